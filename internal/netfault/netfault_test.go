package netfault

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// A network is made, cut, healed and removed without a trace: no
// namespace, link or state file of it is left.
func TestNetLifecycle(t *testing.T) {
	n := New(t, 2)
	s := n.s
	ping := func(i int) error {
		return exec.Command("ip", "netns", "exec", n.NS(i), "ping", "-c", "1", "-W", "1", n.HostAddr()).Run()
	}
	if _, err := exec.LookPath("ping"); err == nil {
		if err := ping(0); err != nil {
			t.Fatalf("namespace 0 does not reach the host: %v", err)
		}
		n.Isolate(0)
		if err := ping(0); err == nil {
			t.Errorf("isolated namespace 0 still reaches the host")
		}
		n.Heal()
		if err := ping(0); err != nil {
			t.Errorf("healed namespace 0 does not reach the host: %v", err)
		}
	}
	n.Drop(0, 1)
	n.Split([]int{0}, []int{1})
	n.Heal()
	n.Close()
	out, _ := exec.Command("ip", "-o", "link", "show").Output()
	ns, _ := exec.Command("ip", "netns", "list").Output()
	for _, want := range []string{fmt.Sprintf("%s%db", Prefix, s), fmt.Sprintf("%s%dv", Prefix, s)} {
		if strings.Contains(string(out), want) {
			t.Errorf("link %s* left after Close", want)
		}
	}
	if p := fmt.Sprintf("%s-%d-", Prefix, s); strings.Contains(string(ns), p) {
		t.Errorf("namespace %s* left after Close:\n%s", p, ns)
	}
}
