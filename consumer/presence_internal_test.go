package consumer

import (
	"testing"
	"time"
)

// The last-minute count holds the events of the last 60 seconds only.
func TestPerSecondLastMinute(t *testing.T) {
	var p perSecond
	t0 := time.Unix(1_000_000, 0)
	for i := range 90 { // one event a second for 90 s, two in the last one
		p.add(t0.Add(time.Duration(i) * time.Second))
	}
	p.add(t0.Add(89 * time.Second))
	if got := p.count(t0.Add(89 * time.Second)); got != 61 {
		t.Errorf("count at 89s = %d, want 61 (seconds 30-89, two in the last)", got)
	}
	if got := p.count(t0.Add(200 * time.Second)); got != 0 {
		t.Errorf("count long after = %d, want 0", got)
	}
}
