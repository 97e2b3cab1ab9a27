// Package netfault builds a private network on this machine for tests
// that break it: Linux network namespaces on one bridge, each with its own
// address in 10.213.S.0/24 (S picked free per network), the host on the
// bridge as 10.213.S.1. Processes run in a namespace through
// "ip netns exec". Faults are kernel state only, nothing leaves the
// machine: a namespace's link taken down (isolated: every packet to and
// from it dropped, no connection closed), blackhole routes in a namespace
// (a split, or one direction of a link only), and SIGSTOP. Proxy puts a
// toxiproxy in between for latency, jitter and stalled connections.
//
// Everything a Net makes is named after it (prefix "pqnf") and removed by
// Close, which New registers with t.Cleanup; New first removes what a
// crashed earlier run left, naming the process that made it.
package netfault

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Prefix starts the name of every namespace, link and state file a Net
// makes.
const Prefix = "pqnf"

// stateDir records, per network, the process that made it, so that a
// sweep removes only what a process no longer running left.
const stateDir = "/run/" + Prefix

// Net is a bridge with namespaces on it.
type Net struct {
	t      testing.TB
	s      int // the third octet
	bridge string
	ns     []string // namespace names, by index
	veths  []string // host-side veth names, by index

	mu     sync.Mutex
	routes map[[2]int]bool // blackholes in place: [from, to]
	down   map[int]bool
}

// Available says why namespaces cannot be made here ("" when they can):
// they need root and the ip command (iproute2).
func Available() string {
	if os.Geteuid() != 0 {
		return "network namespaces need root (ip netns add); run as root, as CI does"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "no ip command (iproute2) on PATH: apt-get install iproute2"
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns list failed: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// New makes a bridge and n namespaces on it, each with its address
// (Addr), lo up and a route to the subnet; the host gets HostAddr. It
// skips t, saying why, where namespaces cannot be made.
func New(t testing.TB, n int) *Net {
	t.Helper()
	if why := Available(); why != "" {
		t.Skip(why)
	}
	sweepOnce.Do(func() {
		if err := Sweep(); err != nil {
			t.Logf("netfault: sweep of leftovers: %v", err)
		}
	})
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	net := &Net{t: t, routes: map[[2]int]bool{}, down: map[int]bool{}}
	// The bridge's creation claims S: another network (this process or
	// another) holds any S whose bridge exists.
	for s := 1; s < 255; s++ {
		br := fmt.Sprintf("%s%db", Prefix, s)
		if err := run("ip", "link", "add", br, "type", "bridge"); err != nil {
			continue
		}
		net.s, net.bridge = s, br
		break
	}
	if net.bridge == "" {
		t.Fatal("netfault: no free 10.213.S.0/24 (bridges pqnf1b..pqnf254b all exist)")
	}
	if err := os.WriteFile(filepath.Join(stateDir, strconv.Itoa(net.s)), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = run("ip", "link", "del", net.bridge)
		t.Fatal(err)
	}
	t.Cleanup(net.Close)
	must := func(args ...string) {
		t.Helper()
		if err := run(args...); err != nil {
			t.Fatalf("netfault: %v", err)
		}
	}
	must("ip", "addr", "add", net.HostAddr()+"/24", "dev", net.bridge)
	must("ip", "link", "set", net.bridge, "up")
	for i := range n {
		ns := fmt.Sprintf("%s-%d-%d", Prefix, net.s, i)
		veth := fmt.Sprintf("%s%dv%d", Prefix, net.s, i)
		peer := veth + "p"
		net.ns, net.veths = append(net.ns, ns), append(net.veths, veth)
		must("ip", "netns", "add", ns)
		must("ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
		must("ip", "link", "set", peer, "netns", ns)
		must("ip", "link", "set", veth, "master", net.bridge)
		must("ip", "link", "set", veth, "up")
		must("ip", "-n", ns, "link", "set", "lo", "up")
		must("ip", "-n", ns, "link", "set", peer, "name", "eth0")
		must("ip", "-n", ns, "addr", "add", net.Addr(i)+"/24", "dev", "eth0")
		must("ip", "-n", ns, "link", "set", "eth0", "up")
	}
	return net
}

var sweepOnce sync.Once

// Sweep removes the namespaces, links and state of every network whose
// maker is no longer running: what a killed test run left behind.
func Sweep() error {
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		s, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(stateDir, e.Name()))
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && alive(pid) {
			continue
		}
		errs = append(errs, remove(s))
	}
	return errors.Join(errs...)
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// remove deletes network s: its namespaces (their veth ends go with
// them), its host-side veths, its bridge and its state file.
func remove(s int) error {
	var errs []error
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], fmt.Sprintf("%s-%d-", Prefix, s)) {
			if err := run("ip", "netns", "del", f[0]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(links), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, fmt.Sprintf("%s%dv", Prefix, s)) || name == fmt.Sprintf("%s%db", Prefix, s) {
			// A veth whose peer's namespace was just deleted goes with it.
			if err := run("ip", "link", "del", name); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
				errs = append(errs, err)
			}
		}
	}
	if err := os.Remove(filepath.Join(stateDir, strconv.Itoa(s))); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Close removes everything the network made. Processes still running in
// its namespaces keep running, without a network: stop them first.
func (n *Net) Close() {
	if n.bridge == "" {
		return
	}
	if err := remove(n.s); err != nil {
		n.t.Errorf("netfault: remove network %d: %v", n.s, err)
	}
	n.bridge = ""
}

// Addr is namespace i's address.
func (n *Net) Addr(i int) string { return fmt.Sprintf("10.213.%d.%d", n.s, i+2) }

// HostAddr is the host's address on the bridge.
func (n *Net) HostAddr() string { return fmt.Sprintf("10.213.%d.1", n.s) }

// NS is namespace i's name (for ip netns exec).
func (n *Net) NS(i int) string { return n.ns[i] }

// Command is name with args run in namespace i.
func (n *Net) Command(i int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.ns[i], name}, args...)...)
}

// Isolate takes namespace i's link down: nothing reaches it or leaves it,
// and no connection is closed (the peers find out by their own timeouts).
func (n *Net) Isolate(i int) {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.must("ip", "link", "set", n.veths[i], "down")
	n.down[i] = true
}

// Drop drops every packet namespace from sends to namespace to (one
// direction: to's packets still reach from). A blackhole route in from:
// its sends are discarded without a word to the peer.
func (n *Net) Drop(from, to int) {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.routes[[2]int{from, to}] {
		return
	}
	n.must("ip", "-n", n.ns[from], "route", "add", "blackhole", n.Addr(to)+"/32")
	n.routes[[2]int{from, to}] = true
}

// Split cuts every link between a namespace of a and one of b, both ways;
// the host still reaches all of them.
func (n *Net) Split(a, b []int) {
	n.t.Helper()
	for _, i := range a {
		for _, j := range b {
			n.Drop(i, j)
			n.Drop(j, i)
		}
	}
}

// Heal undoes every Isolate, Drop and Split.
func (n *Net) Heal() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := range n.down {
		n.must("ip", "link", "set", n.veths[i], "up")
		delete(n.down, i)
	}
	for r := range n.routes {
		n.must("ip", "-n", n.ns[r[0]], "route", "del", "blackhole", n.Addr(r[1])+"/32")
		delete(n.routes, r)
	}
}

func (n *Net) must(args ...string) {
	n.t.Helper()
	if err := run(args...); err != nil {
		n.t.Fatalf("netfault: %v", err)
	}
}

// Pause stops process pid (SIGSTOP); Resume continues it (SIGCONT).
func Pause(pid int) error { return syscall.Kill(pid, syscall.SIGSTOP) }

// Resume continues a paused process.
func Resume(pid int) error { return syscall.Kill(pid, syscall.SIGCONT) }

// run runs a command, its output in the error should it fail.
func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
