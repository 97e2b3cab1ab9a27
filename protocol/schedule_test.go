package protocol

import "testing"

func TestScheduleSubjects(t *testing.T) {
	work := WorkSubject("q1", "R")
	for _, tt := range []struct{ got, want string }{
		{DelayedSubject(work, "ID"), "procq.sched.at.tasks.q1.work.R.ID"},
		{FireSubject(work), "procq.sched.fire.tasks.q1.work.R"},
		{DelayedTarget(DelayedSubject(work+".M", "ID")), "procq.tasks.q1.work.R.M"},
		{DelayedID(DelayedSubject(work, "ID")), "ID"},
		{DelayedSubject(MsgQueueSubject("jobs"), "ID"), "procq.sched.at.q.jobs.ID"},
		{FireSubject(MsgQueueSubject("jobs")), "procq.sched.fire.q.jobs"},
		{PeriodicSubject("tick"), "procq.sched.cron.tick"},
		{FireSubject(PeriodicTarget("q1", "tick")), "procq.sched.fire.tasks.q1.work.schedule.tick"},
		{DelayedQueueFilter("q1"), "procq.sched.at.tasks.q1.>"},
		{TasksSource().SubjectTransforms[0].Source, "procq.sched.fire.tasks.>"},
		{MsgQueueSource("jobs").SubjectTransforms[0].Destination, "procq.q.jobs"},
		{FiringID("a1", "purge"), "a1"},
		{FiringID("tick", "2026-12-06T10:00:01Z"), "tick.next-1796551201"},
		{FiringID("tick", ""), "tick"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	// A run's filters match its delayed tasks and firings, a map's
	// included, at every priority, and nothing of another run.
	f := RunDelayedFilters("q1", "R")
	if len(f) != 3 || f[0] != "procq.sched.at.tasks.q1.*.R.>" || f[1] != "procq.sched.fire.tasks.q1.*.R" ||
		f[2] != "procq.sched.fire.tasks.q1.*.R.>" {
		t.Errorf("RunDelayedFilters = %q", f)
	}
}

func TestSchedSupported(t *testing.T) {
	for v, want := range map[string]bool{
		"2.15.2": true, "2.14.2": true, "2.14.3-RC.1": true, "3.0.0": true, "v2.16.0": true,
		"2.14.1": false, "2.12.10": false, "2.10.22": false, "": false, "junk": false, "2.14": false,
	} {
		if got := SchedSupported(v); got != want {
			t.Errorf("SchedSupported(%q) = %v, want %v", v, got, want)
		}
	}
	if e := (&ErrNoSchedules{Version: "2.10.22"}).Error(); e != "delayed tasks and schedules need nats-server 2.14.2 or later (message schedules); the broker is nats-server 2.10.22" {
		t.Errorf("ErrNoSchedules says %q", e)
	}
}
