package task

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/procq/procq/task/jsonscan"
)

// Handler runs one task: it takes the task's JSON arguments and returns a
// JSON result or an error. Handle must honour ctx for long work.
type Handler interface {
	Handle(ctx context.Context, args json.RawMessage) (json.RawMessage, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, args json.RawMessage) (json.RawMessage, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, args json.RawMessage) (json.RawMessage, error) {
	return f(ctx, args)
}

// Registry maps task kinds to handlers. It is safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	handlers map[string]Handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{handlers: make(map[string]Handler)}
}

// Register adds h under kind. Registering a kind twice returns
// ErrDuplicateKind; an invalid kind name is an error too.
func (r *Registry) Register(kind string, h Handler) error {
	if err := ValidName(kind); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if h == nil {
		return fmt.Errorf("register %s: nil handler", kind)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.handlers[kind]; ok {
		return fmt.Errorf("register %s: %w", kind, ErrDuplicateKind)
	}
	r.handlers[kind] = h
	return nil
}

// Kinds lists the registered kinds, sorted.
func (r *Registry) Kinds() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	kinds := make([]string, 0, len(r.handlers))
	for k := range r.handlers {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}

// Call runs the handler registered for kind on args. An unknown kind returns
// ErrUnknownKind; a handler panic is recovered and returned as *PanicError.
func (r *Registry) Call(ctx context.Context, kind string, args json.RawMessage) (res json.RawMessage, err error) {
	r.mu.RLock()
	h, ok := r.handlers[kind]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	defer func() {
		if v := recover(); v != nil {
			res, err = nil, &PanicError{Kind: kind, Value: v}
		}
	}()
	return h.Handle(ctx, args)
}

// CallChunk calls the handler on every input of chunk c at once when
// kind's handler is a ChunkHandler, as Register's typed handlers are; ok
// is false otherwise, and the caller runs the inputs one by one with
// Call. A panic outside the handler's own calls (in a result's encoder,
// say) also gives ok false.
func (r *Registry) CallChunk(ctx context.Context, kind string, c Chunk) (res ChunkResult, ok bool) {
	r.mu.RLock()
	h, found := r.handlers[kind]
	r.mu.RUnlock()
	ch, isChunk := h.(ChunkHandler)
	if !found || !isChunk {
		return ChunkResult{}, false
	}
	defer func() {
		if v := recover(); v != nil {
			res, ok = ChunkResult{}, false
		}
	}()
	res = ch.HandleChunk(ctx, c)
	if _, ours := h.(interface{ encodesOwnResults() }); ours {
		return res, true
	}
	// Another ChunkHandler's results are checked as Run's caller checks
	// one result: a result message that is not JSON would be dropped
	// whole by the producer, with every answer in it.
	if res.Results != nil {
		if Valid(res.Results) {
			if n, _, isArray := jsonscan.CountArray(res.Results); isArray && n == c.N {
				return res, true
			}
		}
		res = ChunkResult{Outcomes: make([]Outcome, c.N)}
		for i := range res.Outcomes {
			res.Outcomes[i].Error = fmt.Sprintf("task returned results that are not a JSON array of %d", c.N)
		}
		return res, true
	}
	if len(res.Outcomes) != c.N {
		n := len(res.Outcomes)
		res = ChunkResult{Outcomes: make([]Outcome, c.N)}
		for i := range res.Outcomes {
			res.Outcomes[i].Error = fmt.Sprintf("task returned %d outcomes for a chunk of %d", n, c.N)
		}
		return res, true
	}
	for i := range res.Outcomes {
		if len(res.Outcomes[i].Result) > 0 && !Valid(res.Outcomes[i].Result) {
			res.Outcomes[i] = Outcome{Error: "task returned invalid JSON"}
		}
	}
	return res, true
}

// Has reports whether kind is registered.
func (r *Registry) Has(kind string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.handlers[kind]
	return ok
}

func fmtAny(v any) string { return fmt.Sprint(v) }
