package config_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/procq/procq/config"
)

// ParseInputs never panics on outside input; a range gives exactly b-a+1
// integers in order, and integers beyond 2^53 come back unchanged.
func FuzzParseInputs(f *testing.F) {
	for _, s := range []string{"1..10", "50000000,50000001", "9007199254740993", "-9000000000000000000..9000000000000000000",
		"-9223372036854775808..9223372036854775807", "1e17", `"a",[1,2],{"x":1}`, "5..1", "..", ",", "9223372036854775807..9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in, err := config.ParseInputs(s)
		if err != nil {
			return
		}
		if len(in) == 0 || len(in) > config.MaxRange {
			t.Fatalf("ParseInputs(%q): %d inputs", s, len(in))
		}
		lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "..")
		if !isRange {
			return
		}
		a, _ := strconv.ParseInt(strings.TrimSpace(lo), 10, 64)
		b, _ := strconv.ParseInt(strings.TrimSpace(hi), 10, 64)
		if uint64(len(in)) != uint64(b)-uint64(a)+1 {
			t.Fatalf("range %q: %d inputs, want %d", s, len(in), uint64(b)-uint64(a)+1)
		}
		for i, v := range in {
			if v.(int64) != a+int64(i) {
				t.Fatalf("range %q: input %d is %v", s, i, v)
			}
		}
	})
}

func TestParseInputsBigIntegersExact(t *testing.T) {
	in, err := config.ParseInputs("9007199254740993,-9223372036854775808,9223372036854775807")
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{9007199254740993, -9223372036854775808, 9223372036854775807}
	for i, w := range want {
		if in[i] != any(w) {
			t.Errorf("input %d = %v (%T), want int64 %d", i, in[i], in[i], w)
		}
	}
}

func TestParseInputs(t *testing.T) {
	tests := []struct {
		in      string
		want    []any
		wantErr bool
	}{
		{in: "1..4", want: []any{int64(1), int64(2), int64(3), int64(4)}},
		{in: "50000000, 7", want: []any{int64(50000000), int64(7)}},
		{in: `2.5,"a b",x`, want: []any{2.5, "a b", "x"}},
		{in: "5..1", wantErr: true},
		{in: "1..x", wantErr: true},
		{in: "", wantErr: true},
		{in: "1,,2", wantErr: true},
	}
	for _, tt := range tests {
		got, err := config.ParseInputs(tt.in)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("ParseInputs(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// A range stays its bounds: Len, At and All agree with the materialised
// list, up to the end of int64, without building it.
func TestInputListLazyRange(t *testing.T) {
	for _, s := range []string{"1..5", "9223372036854775805..9223372036854775807", "-2..2", `3,"a",[1]`} {
		in, err := config.ParseInputList(s)
		if err != nil {
			t.Fatal(err)
		}
		want, err := config.ParseInputs(s)
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Collect(in.All())
		if in.Len() != len(want) || len(got) != len(want) {
			t.Fatalf("%s: Len %d, All %d items, want %d", s, in.Len(), len(got), len(want))
		}
		for i := range want {
			if fmt.Sprint(in.At(i)) != fmt.Sprint(want[i]) || fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
				t.Errorf("%s: input %d: At %v, All %v, want %v", s, i, in.At(i), got[i], want[i])
			}
		}
	}
	big, err := config.ParseInputList("1..9000000")
	if err != nil || big.Len() != 9_000_000 || big.At(8_999_999) != int64(9_000_000) {
		t.Errorf("1..9000000: Len %d, last %v, err %v", big.Len(), big.At(big.Len()-1), err)
	}
}
