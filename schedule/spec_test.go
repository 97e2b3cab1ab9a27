package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSpecValidate(t *testing.T) {
	ok := Spec{Name: "tick", Queue: "default", Kind: "message", Args: []byte(`{"text":"hi"}`), Every: time.Minute}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	for _, tt := range []struct {
		name string
		mod  func(*Spec)
		says string
	}{
		{"name with a dot", func(s *Spec) { s.Name = "a.b" }, "name:"},
		{"name with a star", func(s *Spec) { s.Name = "a*" }, "name:"},
		{"name with >", func(s *Spec) { s.Name = ">" }, "name:"},
		{"bad queue", func(s *Spec) { s.Queue = "q.x" }, "queue:"},
		{"no kind", func(s *Spec) { s.Kind = "" }, "kind"},
		{"args not JSON", func(s *Spec) { s.Args = []byte("{") }, "args:"},
		{"under a second", func(s *Spec) { s.Every = 999 * time.Millisecond }, "every:"},
		{"both", func(s *Spec) { s.Cron = "0 * * * * *" }, "not both"},
		{"neither", func(s *Spec) { s.Every = 0 }, "--cron"},
		{"zone with every", func(s *Spec) { s.TZ = "Europe/Berlin" }, "tz:"},
		{"five-field cron", func(s *Spec) { s.Every, s.Cron = 0, "*/5 * * * *" }, "cron:"},
		{"unparseable cron", func(s *Spec) { s.Every, s.Cron = 0, "every tuesday" }, "cron:"},
		{"cron @every", func(s *Spec) { s.Every, s.Cron = 0, "@every 1m" }, "cron:"},
		{"unknown zone", func(s *Spec) { s.Every, s.Cron, s.TZ = 0, "0 0 3 * * *", "Mars/Olympus" }, "tz:"},
		{"zone in the cron", func(s *Spec) { s.Every, s.Cron = 0, "CRON_TZ=Europe/Berlin 0 0 3 * * *" }, "--tz"},
		{"a date that never comes", func(s *Spec) { s.Every, s.Cron = 0, "0 0 0 30 2 *" }, "never fires"},
	} {
		s := ok
		tt.mod(&s)
		err := s.Validate()
		if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s: %v, want ErrBadSpec naming %q", tt.name, err, tt.says)
		}
	}
	for _, c := range []string{"0 */5 * * * *", "@hourly", "@daily", "0 0 3 * * 1-5"} {
		s := ok
		s.Every, s.Cron, s.TZ = 0, c, "Europe/Berlin"
		if err := s.Validate(); err != nil {
			t.Errorf("cron %q: %v", c, err)
		}
	}
}

func TestSpecNext(t *testing.T) {
	created := time.Date(2026, 12, 6, 10, 0, 0, 300e6, time.UTC)
	every := Spec{Every: 10 * time.Second}
	for now, want := range map[time.Time]time.Time{
		created:                       created.Round(time.Second).Add(10 * time.Second),
		created.Add(25 * time.Second): time.Date(2026, 12, 6, 10, 0, 30, 0, time.UTC),
	} {
		if got := every.Next(created, now); !got.Equal(want) {
			t.Errorf("every 10s, now %v: next %v, want %v", now, got, want)
		}
	}
	berlin := Spec{Cron: "0 0 3 * * *", TZ: "Europe/Berlin"} // 03:00 in Berlin is 02:00 UTC in winter
	if got, want := berlin.Next(created, created), time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("cron in Berlin: next %v, want %v", got, want)
	}
}
