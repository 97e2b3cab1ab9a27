package link

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EnsureStream returns the stream, creating it, or updating it only where
// its configuration differs from cfg (MaxMsgs, MaxAge and Duplicates left
// zero keep what the stream has): every process declares the topology
// at start, and needless updates from many processes at once would churn
// the broker (and race with consumer creation inside nats-server). A
// replica count the broker cannot place is ErrReplicas.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, logger *slog.Logger) (jetstream.Stream, error) {
	cfg.Replicas = max(cfg.Replicas, 1)
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Create, never create-or-update: processes starting together all
		// find it missing, and an update racing another's consumer
		// creation is what the lookup is there to avoid.
		s, err = js.CreateStream(ctx, cfg)
		if err == nil {
			return s, settle(ctx, s, cfg.Replicas)
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, replicasErr(err, cfg.Replicas)
		}
		s, err = js.Stream(ctx, cfg.Name) // created meanwhile, differently
	}
	if err != nil {
		return nil, err
	}
	have := s.CachedInfo().Config
	if streamCurrent(have, cfg) {
		return s, settle(ctx, s, cfg.Replicas)
	}
	// What the caller left zero it does not care about (streamCurrent
	// ignores it too): an update for another setting keeps the stream's own.
	cfg.MaxMsgs = cmp.Or(cfg.MaxMsgs, have.MaxMsgs)
	cfg.MaxAge = cmp.Or(cfg.MaxAge, have.MaxAge)
	cfg.Duplicates = cmp.Or(cfg.Duplicates, have.Duplicates)
	if have.Replicas != cfg.Replicas && logger != nil {
		logger.InfoContext(ctx, "stream replicas changed", "stream", cfg.Name, "from", have.Replicas, "to", cfg.Replicas)
	}
	if s, err = js.UpdateStream(ctx, cfg); err != nil {
		return nil, replicasErr(err, cfg.Replicas)
	}
	return s, settle(ctx, s, cfg.Replicas)
}

// settle waits, until ctx ends or at most settleTimeout, for a replicated
// stream to have a leader and its replicas: right after a replica change
// or during an election the stream answers nothing, and whoever uses it
// first would time out.
func settle(ctx context.Context, s jetstream.Stream, replicas int) error {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	for {
		ci := s.CachedInfo().Cluster
		if replicas <= 1 || ci == nil || (ci.Leader != "" && len(ci.Replicas)+1 >= replicas) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s: no leader with %d replicas yet: %w", s.CachedInfo().Config.Name, replicas, ctx.Err())
		case <-time.After(retryWait):
		}
		if _, err := s.Info(ctx); err != nil && !Transient(err) {
			return err
		}
	}
}

// ErrReplicas says that the broker cannot place a stream's replicas: the
// replica count is larger than the cluster (or the broker is not
// clustered at all).
var ErrReplicas = errors.New("replica count not possible on this broker")

func replicasErr(err error, replicas int) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	switch apiErr.ErrorCode {
	case jetstream.ErrorCode(10074), // replicas > 1 not supported in non-clustered mode
		jetstream.ErrorCode(10023), // insufficient resources
		jetstream.ErrorCode(10005): // no suitable peers for placement
		return fmt.Errorf("%w: %d replicas: %w", ErrReplicas, replicas, err)
	}
	return err
}

// streamCurrent reports whether have already has every field want sets.
func streamCurrent(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Description == want.Description &&
		have.Retention == want.Retention && have.Storage == want.Storage && have.Discard == want.Discard &&
		have.Replicas == want.Replicas &&
		(want.MaxMsgs == 0 || have.MaxMsgs == want.MaxMsgs) &&
		(want.MaxAge == 0 || have.MaxAge == want.MaxAge) &&
		(want.Duplicates == 0 || have.Duplicates == want.Duplicates) &&
		have.AllowMsgSchedules == want.AllowMsgSchedules && have.AllowMsgTTL == want.AllowMsgTTL &&
		have.AllowDirect == want.AllowDirect &&
		slices.EqualFunc(have.Sources, want.Sources, sameSource)
}

// sameSource reports whether two stream sources take the same messages
// the same way.
func sameSource(a, b *jetstream.StreamSource) bool {
	return a.Name == b.Name && a.FilterSubject == b.FilterSubject &&
		slices.Equal(a.SubjectTransforms, b.SubjectTransforms) &&
		(a.Consumer == nil) == (b.Consumer == nil) && (a.Consumer == nil || *a.Consumer == *b.Consumer)
}

// EnsureConsumer is ensureStream for the queue's durable consumer.
func EnsureConsumer(ctx context.Context, s jetstream.Stream, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	if c, err := s.Consumer(ctx, cfg.Durable); err == nil {
		have := c.CachedInfo().Config
		if have.FilterSubject == cfg.FilterSubject && slices.Equal(have.FilterSubjects, cfg.FilterSubjects) && have.AckPolicy == cfg.AckPolicy && have.AckWait == cfg.AckWait &&
			have.MaxDeliver == cfg.MaxDeliver && have.MaxAckPending == cfg.MaxAckPending && have.Description == cfg.Description {
			return c, nil
		}
	}
	return s.CreateOrUpdateConsumer(ctx, cfg)
}

// EnsureKeyValue returns the bucket, creating it if it does not exist and
// updating it in place when its replica count differs from cfg's (or it
// lacks the per-key TTLs cfg asks for).
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, logger *slog.Logger) (jetstream.KeyValue, error) {
	cfg.Replicas = max(cfg.Replicas, 1)
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		// Create, never create-or-update, as in EnsureStream.
		kv, err = js.CreateKeyValue(ctx, cfg)
		if err == nil {
			return kv, settleBucket(ctx, js, cfg)
		}
		if !errors.Is(err, jetstream.ErrBucketExists) && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, replicasErr(err, cfg.Replicas)
		}
		kv, err = js.KeyValue(ctx, cfg.Bucket) // created meanwhile, differently
	}
	if err != nil {
		return nil, err
	}
	s, err := js.Stream(ctx, "KV_"+cfg.Bucket)
	if err != nil {
		return nil, err
	}
	sc := s.CachedInfo().Config
	if sc.Replicas == cfg.Replicas && (cfg.LimitMarkerTTL == 0 || sc.SubjectDeleteMarkerTTL == cfg.LimitMarkerTTL) {
		return kv, settle(ctx, s, cfg.Replicas)
	}
	if sc.Replicas != cfg.Replicas && logger != nil {
		logger.InfoContext(ctx, "bucket replicas changed", "bucket", cfg.Bucket, "from", sc.Replicas, "to", cfg.Replicas)
	}
	if kv, err = js.UpdateKeyValue(ctx, cfg); err != nil {
		return nil, replicasErr(err, cfg.Replicas)
	}
	return kv, settleBucket(ctx, js, cfg)
}

// settleBucket is settle for a bucket's stream.
func settleBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) error {
	if cfg.Replicas <= 1 {
		return nil // nothing to elect: spare the lookup
	}
	s, err := js.Stream(ctx, "KV_"+cfg.Bucket)
	if err != nil {
		return err
	}
	return settle(ctx, s, cfg.Replicas)
}

// settleTimeout bounds settle: a cluster that elects no leader within it
// has lost its majority, and waiting longer would only hide that.
const settleTimeout = 30 * time.Second

// attemptTimeout bounds one JetStream API call in Retry: a cluster without
// a meta leader does not answer at all.
const attemptTimeout = 5 * time.Second

// Retry calls f until it succeeds, fails for good, or timeout has passed:
// a broker that does not answer yet (a cluster electing its leaders, a
// stream moving to another node) is waited for, and the log says so once.
func Retry[T any](ctx context.Context, timeout time.Duration, logger *slog.Logger, f func(context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(timeout)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		v, err := f(actx)
		cancel()
		if err == nil || !Transient(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return v, err
		}
		if attempt == 1 && logger != nil {
			logger.WarnContext(ctx, "waiting for JetStream to answer", "waiting_for", "a stream or meta leader (cluster election)",
				"timeout", timeout, "error", err)
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(retryWait):
		}
	}
}

// Transient reports whether err says only that the broker did not answer
// in time, as during a leader election.
func Transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 503: JetStream temporarily unavailable (no leader yet); 10158: a
		// publish with this message id is still being stored (a clustered
		// stream answers a re-publish so while the first is in flight).
		return apiErr.Code == 503 && apiErr.ErrorCode != jetstream.ErrorCode(10023) ||
			apiErr.ErrorCode == jetstream.ErrorCode(10158)
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}
