package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The documented commands exist: every command line in a ``` code block
// of README.md and docs/*.md that runs bin/producer, bin/consumer or
// bin/broker (after "$ " or environment assignments, or as one stage of a
// pipeline or list) runs with --help appended and must exit 0. Cobra
// refuses an unknown flag even with --help; an unknown subcommand it
// would take for a positional argument, so the help printed must also be
// the command's own: its usage names the subcommands shown, and has room
// for the positional arguments left.
func TestDocumentedCommands(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../README.md"}, files...)
	var cmds []docCommand
	for _, f := range files {
		cmds = append(cmds, documentedCommands(t, f)...)
	}
	// A broken extractor finds nothing and would pass: the docs show many
	// more than this.
	if len(cmds) < 15 {
		t.Fatalf("found %d documented commands in %v, want at least 15: %+v", len(cmds), files, cmds)
	}
	for _, c := range cmds {
		t.Run(c.where, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, anyPort).set(c.env...)
			p := e.start(c.exe, append(slices.Clone(c.args), "--help")...)
			p.mustExit(0, 2*time.Minute)
			if err := fitsUsage(c, p.stdout.String()); err != nil {
				t.Errorf("%s: %v\n--- help:\n%s", c.line, err, p.stdout)
			}
		})
	}
}

// docCommand is one documented invocation of an executable.
type docCommand struct {
	where string   // file:line, the subtest's name
	line  string   // as written
	env   []string // NAME, value, ... assigned before it
	exe   string   // broker, producer or consumer
	args  []string
}

var (
	docExeRE  = regexp.MustCompile(`^(?:\./)?bin/(producer|consumer|broker)$`)
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// documentedCommands extracts the commands of path's code blocks.
func documentedCommands(t *testing.T, path string) []docCommand {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []docCommand
	sc := bufio.NewScanner(f)
	inBlock := false
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inBlock = !inBlock
			continue
		}
		if !inBlock {
			continue
		}
		start := n
		for strings.HasSuffix(line, `\`) && sc.Scan() { // a continued line
			n++
			line = strings.TrimSuffix(line, `\`) + " " + sc.Text()
		}
		text := strings.TrimPrefix(strings.TrimSpace(line), "$ ")
		where := fmt.Sprintf("%s:%d", filepath.Base(path), start)
		for _, simple := range shellSplit(text) {
			if c, ok := asDocCommand(simple); ok {
				c.where, c.line = where, text
				out = append(out, c)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// asDocCommand reads one simple command: environment assignments, then
// one of the executables and its arguments. A command with a command
// substitution is skipped: its arguments are not known.
func asDocCommand(words []shellWord) (docCommand, bool) {
	var c docCommand
	for len(words) > 0 && !words[0].subst {
		name, value, ok := strings.Cut(words[0].text, "=")
		if !ok || !envNameRE.MatchString(name) {
			break
		}
		c.env = append(c.env, name, value)
		words = words[1:]
	}
	if len(words) == 0 {
		return c, false
	}
	m := docExeRE.FindStringSubmatch(words[0].text)
	if m == nil {
		return c, false
	}
	c.exe = m[1]
	for _, w := range words[1:] {
		if w.subst {
			return c, false
		}
		c.args = append(c.args, w.text)
	}
	return c, true
}

// shellWord is a word after quote removal; subst says it holds a command
// substitution ($(...) or `...`).
type shellWord struct {
	text  string
	subst bool
}

// shellSplit splits a line as a shell would, for simple quoting: single
// and double quotes and backslashes, a comment from a word that starts
// with #, and the operators | || && ; & that separate simple commands.
// Redirections (>, >>, <, 2>&1, ...) are dropped with their targets.
func shellSplit(line string) [][]shellWord {
	var (
		cmds    [][]shellWord
		cur     []shellWord
		word    strings.Builder
		inWord  bool
		subst   bool
		dropTgt bool // the next word is a redirection's target
	)
	endWord := func() {
		if !inWord {
			return
		}
		if dropTgt {
			dropTgt = false
		} else {
			cur = append(cur, shellWord{text: word.String(), subst: subst})
		}
		word.Reset()
		inWord, subst = false, false
	}
	endCmd := func() {
		endWord()
		if len(cur) > 0 {
			cmds = append(cmds, cur)
		}
		cur = nil
	}
	isFD := func(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == ' ' || ch == '\t':
			endWord()
		case ch == '#' && !inWord:
			endCmd()
			return cmds
		case ch == '\'':
			inWord = true
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				j = len(line) - i - 1
			}
			word.WriteString(line[i+1 : i+1+j])
			i += j + 1
		case ch == '"':
			inWord = true
			for i++; i < len(line) && line[i] != '"'; i++ {
				switch {
				case line[i] == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0:
					i++
				case line[i] == '`', line[i] == '$' && i+1 < len(line) && line[i+1] == '(':
					subst = true
				}
				word.WriteByte(line[i])
			}
		case ch == '\\':
			inWord = true
			if i+1 < len(line) {
				i++
				word.WriteByte(line[i])
			}
		case ch == '`', ch == '$' && i+1 < len(line) && line[i+1] == '(':
			inWord, subst = true, true
			word.WriteByte(ch)
		case ch == '|' || ch == ';' || ch == '&' && (i+1 >= len(line) || line[i+1] != '>'):
			endCmd()
			if i+1 < len(line) && (line[i+1] == ch) { // || &&
				i++
			}
		case ch == '>' || ch == '<' || ch == '&':
			if isFD(word.String()) && !subst { // 2> : the digits are the descriptor
				word.Reset()
				inWord = false
			}
			endWord()
			for i+1 < len(line) && (line[i+1] == '>' || line[i+1] == '&') {
				i++
			}
			// >&1: the target is in the operator; else it is the next word.
			if line[i] == '&' && i+1 < len(line) && isFD(line[i+1:i+2]) {
				i++
			} else {
				dropTgt = true
			}
		default:
			inWord = true
			word.WriteByte(ch)
		}
	}
	endCmd()
	return cmds
}

var (
	usageRE = regexp.MustCompile(`(?m)^Usage:\n\s+(.+)$`)
	// A flag line of cobra's help: "  -n, --count int   items to take".
	flagRE = regexp.MustCompile(`(?m)^\s+(?:-([A-Za-z0-9]), )?--([A-Za-z0-9][A-Za-z0-9-]*)(?: ([A-Za-z0-9]+))?(?:\s{2,}|$)`)
	pathRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	argRE  = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
)

// fitsUsage checks that the help printed is c's command's: the usage's
// command path is the subcommands c names, and the positional arguments
// left are no more than the usage names (NAME, ID).
func fitsUsage(c docCommand, help string) error {
	m := usageRE.FindStringSubmatch(help)
	if m == nil {
		return fmt.Errorf("no Usage line in the help")
	}
	var path []string
	places := 0
	for i, f := range strings.Fields(m[1]) {
		switch {
		case i == 0 || (places == 0 && pathRE.MatchString(f)):
			path = append(path, f)
		case argRE.MatchString(f):
			places++
		}
	}
	takesValue := map[string]bool{}
	for _, fm := range flagRE.FindAllStringSubmatch(help, -1) {
		takesValue["--"+fm[2]] = fm[3] != ""
		if fm[1] != "" {
			takesValue["-"+fm[1]] = fm[3] != ""
		}
	}
	var positional []string
	for i := 0; i < len(c.args); i++ {
		a := c.args[i]
		if a == "--" {
			positional = append(positional, c.args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		name, _, hasValue := strings.Cut(a, "=")
		value, known := takesValue[name]
		if !known {
			return fmt.Errorf("flag %s is not in the command's help (hidden?)", name)
		}
		if value && !hasValue {
			i++
		}
	}
	sub := path[1:]
	if len(positional) < len(sub) || !slices.Equal(positional[:len(sub)], sub) {
		return fmt.Errorf("the help is for %q, not for the subcommands in %q", strings.Join(path, " "), positional)
	}
	if rest := positional[len(sub):]; len(rest) > places {
		return fmt.Errorf("%q takes %d positional arguments (%s), got %q: an unknown subcommand?", strings.Join(path, " "), places, m[1], rest)
	}
	return nil
}
