package ops

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPrintable(t *testing.T) {
	for _, tc := range []struct {
		name, in      string
		lines, single string // want, with keepLines and without
	}{
		{"plain", "x*x overflows int64 for x=5", "x*x overflows int64 for x=5", "x*x overflows int64 for x=5"},
		{"empty", "", "", ""},
		{"utf-8 kept", "café ✓ 日本", "café ✓ 日本", "café ✓ 日本"},
		{"backslash kept", `C:\tmp "q"`, `C:\tmp "q"`, `C:\tmp "q"`},
		{"title (OSC)", "a\x1b]0;pwned\x07b", `a\x1b]0;pwned\ab`, `a\x1b]0;pwned\ab`},
		{"clear (CSI)", "\x1b[2J\x1b[H", `\x1b[2J\x1b[H`, `\x1b[2J\x1b[H`},
		{"newline and tab", "a\nb\tc", "a\nb\tc", `a\nb\tc`},
		{"carriage return", "ok\rFAKE", `ok\rFAKE`, `ok\rFAKE`},
		{"other C0", "\x00\x08\x0b\x0c\x1f", `\x00\b\v\f\x1f`, `\x00\b\v\f\x1f`},
		{"DEL", "a\x7fb", `a\x7fb`, `a\x7fb`},
		{"C1 CSI", "a\u009b2Jb\u0085", `a\u009b2Jb\u0085`, `a\u009b2Jb\u0085`},
		{"bare 8-bit CSI byte", "a\x9b2J", `a\x9b2J`, `a\x9b2J`},
		{"invalid utf-8", "a\xff\xfe", `a\xff\xfe`, `a\xff\xfe`},
		{"bidi override", "invoice\u202eexe.pdf", `invoice\u202eexe.pdf`, `invoice\u202eexe.pdf`},
		{"bidi embeddings", "\u202a\u202b\u202c\u202d", `\u202a\u202b\u202c\u202d`, `\u202a\u202b\u202c\u202d`},
		{"bidi isolates", "\u2066x\u2067y\u2068z\u2069", `\u2066x\u2067y\u2068z\u2069`, `\u2066x\u2067y\u2068z\u2069`},
		{"bidi marks", "\u200e\u200f\u061c", `\u200e\u200f\u061c`, `\u200e\u200f\u061c`},
		{"neighbours kept", "\u2029\u202f\u2065\u206a", "\u2029\u202f\u2065\u206a", "\u2029\u202f\u2065\u206a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Printable(tc.in, true); got != tc.lines {
				t.Errorf("Printable(%q, true) = %q, want %q", tc.in, got, tc.lines)
			}
			if got := Printable(tc.in, false); got != tc.single {
				t.Errorf("Printable(%q, false) = %q, want %q", tc.in, got, tc.single)
			}
			for _, keep := range []bool{true, false} {
				got := Printable(tc.in, keep)
				if strings.ContainsAny(got, "\x1b\x07\r\x00\x7f\u009b\u202e\u2066") {
					t.Errorf("Printable(%q, %v) = %q still holds a control", tc.in, keep, got)
				}
			}
		})
	}
}

// PrintableJSON escapes what encoding/json leaves raw, and the JSON still
// decodes to the same value.
func TestPrintableJSON(t *testing.T) {
	in := DeadLetter{ID: 7, Reason: "boom \x1b]0;pwned\x07 \u202eevil\u2069 \x7f \u009b", Body: "plain ✓ é\n"}
	b, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.ContainsAny(string(b), "\u202e\u2069\x7f\u009b") {
		t.Fatalf("encoding/json now escapes these itself: %s", b)
	}
	if strings.Contains(string(b), "\x1b") {
		t.Fatalf("encoding/json left ESC raw: %s", b)
	}
	safe := PrintableJSON(b)
	if strings.ContainsAny(string(safe), "\x1b\x07\x7f\u009b\u202e\u2069") {
		t.Errorf("PrintableJSON left a control raw: %q", safe)
	}
	for _, want := range []string{`\u001b]0;pwned\u0007`, `\u202eevil\u2069`, `\u007f`, `\u009b`, "plain ✓ é\\n", "{\n  \"id\": 7"} {
		if !strings.Contains(string(safe), want) {
			t.Errorf("PrintableJSON output lacks %q:\n%s", want, safe)
		}
	}
	var out DeadLetter
	if err := json.Unmarshal(safe, &out); err != nil {
		t.Fatal(err)
	}
	if out.Reason != in.Reason || out.Body != in.Body || out.ID != in.ID {
		t.Errorf("decoded %+v, want %+v", out, in)
	}
	if plain := []byte(`{"a":"b"}`); &PrintableJSON(plain)[0] != &plain[0] {
		t.Errorf("PrintableJSON copied JSON that needs nothing")
	}
}
