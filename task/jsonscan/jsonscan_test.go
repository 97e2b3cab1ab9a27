package jsonscan

import (
	"encoding/json"
	"testing"
)

// CountArray agrees with SplitArray on every valid JSON: the same count,
// and objects exactly when every element opens with '{'.
func FuzzCountArray(f *testing.F) {
	for _, s := range []string{`[]`, ` [ ] `, `[1]`, `[{"x":1},{"x":2}]`, `[{"a":"],{"}, [1,[2,{}]], "x\"]"]`,
		`[ {"x":1} , null ]`, `{"x":1}`, `"[1,2]"`, `[[],{}]`, `[{"s":"\\"}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		n, objects, ok := CountArray(b)
		elems, sok := SplitArray(b, 0)
		if ok != sok {
			t.Fatalf("CountArray ok %v, SplitArray ok %v on %q", ok, sok, b)
		}
		if !ok {
			return
		}
		want := true
		for _, e := range elems {
			want = want && e[0] == '{'
		}
		if n != len(elems) || objects != want {
			t.Fatalf("CountArray(%q) = %d, %v; SplitArray gives %d elements, objects %v", b, n, objects, len(elems), want)
		}
	})
}
