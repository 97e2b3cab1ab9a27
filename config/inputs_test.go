package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/procq/procq/config"
)

// ParseInputs never panics on outside input; a range gives exactly b-a+1
// integers in order, and integers beyond 2^53 come back unchanged. Any
// other parsed inputs, written back as a JSON array, as JSON lines or as a
// comma list of JSON values, parse to the same JSON.
func FuzzParseInputs(f *testing.F) {
	for _, s := range []string{"1..10", "50000000,50000001", "9007199254740993", "-9000000000000000000..9000000000000000000",
		"-9223372036854775808..9223372036854775807", "1e17", `"a",[1,2],{"x":1}`, "5..1", "..", ",", "9223372036854775807..9223372036854775807",
		"[1,2]", `"x,y"`, "[[1,2],[3,4]]", "1\n\"a\"\n[2]\n", `{"x":[1,{"y":"a..b"}],"z":2}`, `"a..b"`, "1..x", "a..b", "[]", "[[]]",
		"123456789012345678901234567890", "1e400", "[1,2", "[1] [2]", "1,2\n3", "x, y z ,true,null", " +3 .. 7 ", "1,\n2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in, err := config.ParseInputs(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ParseInputs(%q): an empty error", s)
			}
			return
		}
		if len(in) == 0 || len(in) > config.MaxRange {
			t.Fatalf("ParseInputs(%q): %d inputs", s, len(in))
		}
		if a, b, ok := intRange(s); ok {
			if uint64(len(in)) != uint64(b)-uint64(a)+1 {
				t.Fatalf("range %q: %d inputs, want %d", s, len(in), uint64(b)-uint64(a)+1)
			}
			for i, v := range in {
				if v.(int64) != a+int64(i) {
					t.Fatalf("range %q: input %d is %v", s, i, v)
				}
			}
			return
		}
		want, err := json.Marshal(in)
		if err != nil {
			t.Fatalf("ParseInputs(%q) = %#v: not JSON: %v", s, in, err)
		}
		forms := []string{string(want)}
		if len(in) > 1 || !isArray(in[0]) { // a lone array would be the inputs' array
			var lines, list []string
			for _, v := range in {
				b, _ := json.Marshal(v)
				lines = append(lines, string(b))
				list = append(list, string(b))
			}
			forms = append(forms, strings.Join(lines, "\n"), strings.Join(list, ","))
		}
		for _, form := range forms {
			back, err := config.ParseInputs(form)
			if err != nil {
				t.Fatalf("ParseInputs(%q) = %s, but its form %q does not parse: %v", s, want, form, err)
			}
			if got, _ := json.Marshal(back); canon(got) != canon(want) {
				t.Fatalf("ParseInputs(%q) = %s, but its form %q parses to %s", s, want, form, got)
			}
		}
	})
}

// intRange is the range s is, if it is one: a..b with both bounds int64.
func intRange(s string) (a, b int64, ok bool) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "..")
	if !isRange {
		return 0, 0, false
	}
	a, errA := strconv.ParseInt(strings.TrimSpace(lo), 10, 64)
	b, errB := strconv.ParseInt(strings.TrimSpace(hi), 10, 64)
	return a, b, errA == nil && errB == nil
}

// canon is JSON written one way: invalid UTF-8, which json.Marshal writes
// as \ufffd, as the character.
func canon(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "invalid: " + err.Error()
	}
	b, _ = json.Marshal(v)
	return string(b)
}

func isArray(v any) bool {
	_, ok := v.([]any)
	return ok
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
	// Ints: the same integers, typed, for a range or a list of integers
	// alone.
	for s, want := range map[string]string{"1..5": "[1 2 3 4 5]", "-2..0": "[-2 -1 0]", "3,4,-5": "[3 4 -5]",
		"9223372036854775806..9223372036854775807": "[9223372036854775806 9223372036854775807]", `3,"a"`: "", "1,2.5": "", "[1,[2]]": ""} {
		in, err := config.ParseInputList(s)
		if err != nil {
			t.Fatal(err)
		}
		ints, ok := in.Ints()
		if ok != (want != "") {
			t.Errorf("%s: Ints ok %v", s, ok)
			continue
		}
		if ok && fmt.Sprint(slices.Collect(ints)) != want {
			t.Errorf("%s: Ints %v, want %s", s, slices.Collect(ints), want)
		}
	}
	big, err := config.ParseInputList("1..9000000")
	if err != nil || big.Len() != 9_000_000 || big.At(8_999_999) != int64(9_000_000) {
		t.Errorf("1..9000000: Len %d, last %v, err %v", big.Len(), big.At(big.Len()-1), err)
	}
}

// Each form of --inputs (pool.inputs): a range, a JSON array, JSON lines and
// a comma list of JSON values, with bare words as strings; and what is
// wrong when it is none of them.
func TestParseInputsForms(t *testing.T) {
	type obj = map[string]any
	type arr = []any
	tests := []struct {
		name    string
		input   string
		want    []any
		wantErr string // a part of the error; "" for none
	}{
		// Ranges: the whole value, integers, inclusive.
		{name: "range", input: "1..10", want: arr{int64(1), int64(2), int64(3), int64(4), int64(5), int64(6), int64(7), int64(8), int64(9), int64(10)}},
		{name: "range of one", input: "7..7", want: arr{int64(7)}},
		{name: "range with spaces and signs", input: " -1 .. +1 ", want: arr{int64(-1), int64(0), int64(1)}},
		{name: "reversed range", input: "5..1", wantErr: `range "5..1" is reversed: want a..b with integers a <= b`},
		{name: "range too long", input: "0..10000000", wantErr: "has more than 10000000 inputs"},
		{name: "range bound beyond int64", input: "1..9223372036854775808", wantErr: "a bound is beyond int64"},
		{name: "range with a word", input: "1..x", wantErr: `"1..x" is not a range`},
		{name: "range of words", input: "a..b", wantErr: `"a..b" is not a range`},
		{name: "range of floats", input: "1.5..3", wantErr: `"1.5..3" is not a range`},
		{name: "range in a list", input: "1..3,4", wantErr: `item 1: "1..3" is not a range: a range is the whole value`},
		{name: "three dots", input: "1..2..3", wantErr: "is not a range"},
		{name: "dots alone", input: "..", wantErr: "is not a range"},

		// A JSON array: its elements are the inputs.
		{name: "array", input: "[1,2]", want: arr{int64(1), int64(2)}},
		{name: "array with spaces", input: " [ 1 , 2 ] ", want: arr{int64(1), int64(2)}},
		{name: "nested arrays", input: "[[1,2],[3,4]]", want: arr{arr{int64(1), int64(2)}, arr{int64(3), int64(4)}}},
		{name: "one array input", input: "[[1,2]]", want: arr{arr{int64(1), int64(2)}}},
		{name: "array of objects", input: `[{"x":1,"y":[2,3]},{"s":"a,b"}]`, want: arr{obj{"x": int64(1), "y": arr{int64(2), int64(3)}}, obj{"s": "a,b"}}},
		{name: "array of mixed", input: `[1,2.5,"a..b",true,null,[]]`, want: arr{int64(1), 2.5, "a..b", true, nil, arr{}}},
		{name: "array of a range string", input: `["1..3"]`, want: arr{"1..3"}},
		{name: "empty array", input: "[]", wantErr: "no inputs: the array [] is empty"},
		{name: "unclosed array", input: "[1,2", wantErr: `item 1: "[1,2": invalid JSON: unexpected end of input`},
		{name: "array then junk", input: "[1,2]x", wantErr: `unexpected "x" after the JSON value "[1,2]"`},
		{name: "arrays without a comma", input: "[1] [2]", wantErr: `unexpected "[2]" after the JSON value "[1]"`},

		// One JSON value that is not an array: one input.
		{name: "quoted string with a comma", input: `"x,y"`, want: arr{"x,y"}},
		{name: "quoted string with dots", input: `"a..b"`, want: arr{"a..b"}},
		{name: "quoted range", input: `"1..10"`, want: arr{"1..10"}},
		{name: "object", input: `{"x":1,"y":2}`, want: arr{obj{"x": int64(1), "y": int64(2)}}},
		{name: "unclosed string", input: `"abc`, wantErr: `item 1: "\"abc": invalid JSON`},
		{name: "unclosed object", input: `{"x":1`, wantErr: "invalid JSON: unexpected end of input"},
		{name: "bad object", input: `{x:1}`, wantErr: "invalid JSON: invalid character 'x'"},

		// JSON lines: one value per line; blank lines and CRLF are fine.
		{name: "JSON lines", input: "1\n\"a,b\"\n[1,2]\n{\"x\":1,\"y\":2}\n", want: arr{int64(1), "a,b", arr{int64(1), int64(2)}, obj{"x": int64(1), "y": int64(2)}}},
		{name: "JSON lines of arrays", input: "[1,2]\n[3,4]", want: arr{arr{int64(1), int64(2)}, arr{int64(3), int64(4)}}},
		{name: "JSON lines with blank lines and CRLF", input: "\r\n\"a\"\r\n\r\n\"b\"\r\n", want: arr{"a", "b"}},
		{name: "JSON lines of one array", input: "[1,2]\n", want: arr{int64(1), int64(2)}},
		{name: "JSON lines, a value over lines", input: "{\n  \"x\": 1\n}\n{\n  \"x\": 2\n}", want: arr{obj{"x": int64(1)}, obj{"x": int64(2)}}},
		{name: "JSON lines, bad line", input: "1\n2\n[3,\n", wantErr: `item 3 (line 3): "[3,": invalid JSON: unexpected end of input`},
		{name: "JSON lines, two values on a line", input: "1\n\"a\" \"b\"", wantErr: `item 2 (line 2): unexpected "\"b\"" after the JSON value`},
		{name: "commas and newlines", input: "1,2\n3,\n4", want: arr{int64(1), int64(2), int64(3), int64(4)}},

		// A comma list of JSON values; a bare word is a string.
		{name: "list", input: `"a,b",[1,2],{"x":1,"y":2}`, want: arr{"a,b", arr{int64(1), int64(2)}, obj{"x": int64(1), "y": int64(2)}}},
		{name: "list of numbers", input: "50000000, 7, 2.5, -0, 1e17", want: arr{int64(50000000), int64(7), 2.5, int64(0), 1e17}},
		{name: "list with bare words", input: `x, hello world ,"a b"`, want: arr{"x", "hello world", "a b"}},
		{name: "list of literals", input: "true,false,null", want: arr{true, false, nil}},
		{name: "list with brackets in strings", input: `"[",  "]{", "\"a,\""`, want: arr{"[", "]{", `"a,"`}},
		{name: "list of a quoted range", input: `x,"1..2"`, want: arr{"x", "1..2"}},
		{name: "bare word with a quote", input: `a"b,c`, want: arr{`a"b`, "c"}},
		{name: "one bare word", input: "words", want: arr{"words"}},
		{name: "unicode", input: `"é,ü",ß`, want: arr{"é,ü", "ß"}},
		{name: "empty item", input: "1,,2", wantErr: `item 2 is empty in "1,,2"`},
		{name: "leading comma", input: ",1", wantErr: "item 1 is empty"},
		{name: "trailing comma", input: "1,2,", wantErr: "empty item after the last comma"},
		{name: "bad JSON in a list", input: `1,{"x":},3`, wantErr: `item 2: "{\"x\":}": invalid JSON`},
		{name: "empty", input: " \n ", wantErr: "no inputs"},

		// Integers are exact at any depth: int64, or json.Number beyond it.
		{name: "big integers", input: "[9007199254740993,[-9223372036854775808,{\"n\":9223372036854775807}]]",
			want: arr{int64(9007199254740993), arr{int64(-9223372036854775808), obj{"n": int64(9223372036854775807)}}}},
		{name: "integer beyond int64", input: "123456789012345678901234567890,[-9223372036854775809]",
			want: arr{json.Number("123456789012345678901234567890"), arr{json.Number("-9223372036854775809")}}},
		{name: "number out of range", input: "[1e400]", wantErr: "number 1e400 is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.ParseInputs(tt.input)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseInputs(%q) = %#v, %v; want an error with %q", tt.input, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseInputs(%q): %v", tt.input, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseInputs(%q)\n got %#v\nwant %#v", tt.input, got, tt.want)
			}
			list, err := config.ParseInputList(tt.input)
			if err != nil || list.Len() != len(tt.want) || !reflect.DeepEqual(slices.Collect(list.All()), tt.want) {
				t.Errorf("ParseInputList(%q) = %d inputs, %v; want %d", tt.input, list.Len(), err, len(tt.want))
			}
		})
	}
}

// Bad inputs are a config error naming the key pool.inputs and what is
// wrong, from the file or the environment.
func TestLoadBadInputs(t *testing.T) {
	for _, tt := range []struct{ yaml, env, wantMsg string }{
		{yaml: "pool:\n  inputs: '[1,2'\n", wantMsg: "invalid JSON"},
		{yaml: "pool:\n  inputs: '9..1'\n", wantMsg: "is reversed"},
		{env: "a..b", wantMsg: `"a..b" is not a range`},
	} {
		t.Run(tt.wantMsg, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.env != "" {
				t.Setenv("PROCQ_POOL_INPUTS", tt.env)
			}
			_, err := config.Load(config.Options{Path: path})
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Key != "pool.inputs" || !strings.Contains(err.Error(), "pool.inputs") || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Load with %q/%q: %v; want an error for pool.inputs with %q", tt.yaml, tt.env, err, tt.wantMsg)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("pool:\n  inputs: '[1,2]'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(config.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := config.ParseInputs(c.Pool.Inputs); err != nil || !reflect.DeepEqual(got, []any{int64(1), int64(2)}) {
		t.Errorf("pool.inputs '[1,2]' = %v, %v; want 1 and 2", got, err)
	}
}
