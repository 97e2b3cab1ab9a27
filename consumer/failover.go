package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
)

// A node of the cluster dies. The raft groups it led (the results stream,
// the queue's durable, ...) elect new leaders after the followers'
// election timeout, and each new leader sends a LEADER_ELECTED advisory.
// The worker waits for those, not for clocks:
//   - an answer the results stream did not confirm is stored again as soon
//     as the stream has a new leader, the task held meanwhile (its lease is
//     kept), rather than handed back after publishTimeout and run again
//     (storeAnswersOnce, which also holds answers the stream refuses);
//   - a pull refused for want of the durable's leader is made again as
//     soon as the durable has one.
//
// Each wait keeps a short fallback should an advisory never come (a user
// without the permission to subscribe to it).

// clusterWatch is what the worker watches: the results stream's leader,
// and its durables' (the queue's levels), each also on a reconnect.
type clusterWatch struct {
	results  *link.Events
	durable  *link.Events
	stopping context.Context // Run's: ends when the worker is asked to stop
}

// watchCluster starts the worker's watches; stop ends them. ctx is Run's.
func (w *Worker) watchCluster(ctx context.Context) (stop func()) {
	nc := w.js.Conn()
	var durables []string
	for _, l := range w.levels {
		if l.cons != nil {
			durables = append(durables, link.ConsumerLeaderElected(protocol.TasksStream, l.cons.CachedInfo().Name))
		}
	}
	w.cluster = clusterWatch{
		results:  link.Watch(nc, link.StreamLeaderElected(protocol.ResultsStream)),
		durable:  link.Watch(nc, durables...),
		stopping: ctx,
	}
	return func() {
		w.cluster.results.Close()
		w.cluster.durable.Close()
	}
}

// storeBackoffMax caps the pause between two stores of answers the
// results stream refused (its first is retryPause, doubling).
const storeBackoffMax = 2 * time.Second

// errStoreTimeout: the results stream did not store an answer within
// Config.StoreTimeout; its task is dead-lettered.
var errStoreTimeout = errors.New("answer not stored")

// storeAnswersOnce is storeAnswers until the results stream stores the
// answers. A store that fails is not the tasks' fault: the worker keeps
// the answers and their tasks' leases (held until settled) and stores
// them again, using none of the tasks' tries, until Config.StoreTimeout
// has passed since the first of a run of failed stores (storeStreak,
// shared by every group: once the results stream has refused answers
// that long, each group gets one more try). While the stream has no
// leader (leaderless: a publish no one took, or left unconfirmed by a
// leader that died, or made while the link was down), it stores them
// again once a leader is elected or the link is back (retryPause at the
// latest); while the stream refuses them (its limits, a full store), it
// backs off from retryPause to storeBackoffMax and tells the map's
// producer of each failure (notice), which fails the map when none of
// its results is stored for a while. A subject no stream stores is
// reported at once (the caller dead-letters its tasks), as is the worker
// stopping (the caller hands them back). Past the bound it returns the
// last error wrapped in errStoreTimeout.
func (w *Worker) storeAnswersOnce(group []finished, pieces []piece) error {
	stop := w.cluster.stopping
	if stop == nil { // outside Run
		stop = context.Background()
	}
	var deadline time.Time
	pause := retryPause
	for try := 1; ; try++ {
		changed := w.cluster.results.Changed()
		err := w.storeAnswers(group, pieces, changed)
		if err == nil {
			w.storeFailing.Store(0)
			return nil
		}
		if stop.Err() != nil {
			return err
		}
		lost := leaderless(err)
		if deadline.IsZero() {
			if noResponders(err) && w.noStream(group[0].job.reply) {
				return err // no stream stores it: not a matter of a leader
			}
			deadline = w.storeStreak().Add(w.cfg.StoreTimeout)
		}
		w.storeLast.Store(time.Now().UnixNano())
		if !lost {
			w.notice(group[0].job, err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%w within %v (queue.put_timeout): %w", errStoreTimeout, w.cfg.StoreTimeout, err)
		}
		wait := retryPause
		if !lost {
			wait, pause = pause, min(2*pause, storeBackoffMax)
		}
		wait = min(wait, left)
		switch {
		case try == 1 && lost:
			w.log.Warn("answers not stored; storing them again once the results stream has a leader",
				"tasks", len(group), "error", err, "waiting_for", "the results stream's leader", "timeout", left.Round(time.Millisecond))
		case try == 1:
			w.log.Warn("answers not stored; keeping them and their tasks, storing them again with backoff",
				"tasks", len(group), "error", err, "waiting_for", "the results stream to store them",
				"backoff", wait, "timeout", left.Round(time.Millisecond))
		case lost: // every retryPause at most: once is enough at Warn
			w.log.Debug("answers not stored again", "tasks", len(group), "try", try, "error", err,
				"waiting_for", "the results stream's leader", "timeout", left.Round(time.Millisecond))
		default:
			w.log.Info("answers not stored again", "tasks", len(group), "try", try, "error", err,
				"waiting_for", "the results stream to store them", "backoff", wait, "timeout", left.Round(time.Millisecond))
		}
		select {
		case <-changed:
		case <-time.After(wait):
		case <-stop.Done():
			return err
		}
	}
}

// storeStreak returns when the run of failed stores of answers that a
// store failing now belongs to began: the first failure since the last
// store that succeeded, unless no store failed within StoreTimeout before
// now (the worker was idle since): then now, a new run.
func (w *Worker) storeStreak() time.Time {
	now := time.Now()
	for {
		began := w.storeFailing.Load()
		if began != 0 && now.Sub(time.Unix(0, w.storeLast.Load())) <= w.cfg.StoreTimeout {
			return time.Unix(0, began)
		}
		if w.storeFailing.CompareAndSwap(began, now.UnixNano()) {
			return now
		}
	}
}

// noResponders: a publish no stream took, for want of a leader or of a
// stream.
func noResponders(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// noStream reports whether the server says no stream stores subject. A
// question it does not answer within a second, or before a leader is
// elected (the meta leader may be the one that died), counts as no.
func (w *Worker) noStream(subject string) bool {
	ctx, cancel := w.cluster.results.Until(context.Background(), time.Second)
	defer cancel()
	_, err := w.js.StreamNameBySubject(ctx, subject)
	return errors.Is(err, jetstream.ErrStreamNotFound)
}

// errUnconfirmed: the results stream elected a new leader while a publish
// waited for its confirmation; the leader that took it may have died with
// it.
var errUnconfirmed = errors.New("result not confirmed before the results stream elected a new leader")

// leaderless reports whether every error in err says only that the
// results stream had no leader to store the answer: a publish no one
// took (no responders), one left unconfirmed when the stream elected a
// new leader, or one made while the link was down. A confirmation that
// merely did not come in time is not one: a stream that cannot store (its
// disk full) answers so too, and the producer must hear of it at once
// (a notice) rather than after the store timeout.
func leaderless(err error) bool {
	if errs, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range errs.Unwrap() {
			if !leaderless(e) {
				return false
			}
		}
		return true
	}
	return noResponders(err) || errors.Is(err, errUnconfirmed) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting)
}

// errNotConfirmed: no confirmation came within publishTimeout.
var errNotConfirmed = fmt.Errorf("result not confirmed within %v", publishTimeout)

// awaitAll waits up to publishTimeout for the stream to confirm every
// publish, or until changed is closed (the results stream elected a new
// leader since before the first publish: one the old leader took is lost).
func awaitAll(futures []jetstream.PubAckFuture, changed <-chan struct{}) error {
	t := time.NewTimer(publishTimeout)
	defer t.Stop()
	var errs []error
	for _, f := range futures {
		select { // confirmed already: whatever came since
		case <-f.Ok():
			continue
		case err := <-f.Err():
			errs = append(errs, err)
			continue
		default:
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, err)
		case <-changed:
			return errors.Join(append(errs, errUnconfirmed)...)
		case <-t.C:
			return errors.Join(append(errs, errNotConfirmed)...)
		}
	}
	return errors.Join(errs...)
}

// pullAgain waits before a pull is made again after one failed: until
// the durable's leader is elected or the link is back (changed, taken
// before the pull), retryPause at the latest.
func pullAgain(ctx context.Context, changed <-chan struct{}) {
	_ = link.Wait(ctx, changed, retryPause)
}
