package producer

import (
	"iter"

	"github.com/procq/procq/task"
)

// Inputs is a map's inputs as its publisher takes them: in batches of up
// to a chunk, each encoded as one JSON array in one call. Values makes
// one of any sequence; a sequence of a concrete type (not any) is encoded
// without boxing each input.
type Inputs interface {
	batches(n int) iter.Seq[batch]
}

// batch is up to a chunk of inputs, valid until the next is taken.
type batch interface {
	len() int
	// marshal encodes every input as one JSON array.
	marshal() ([]byte, error)
	// at is input i alone.
	at(i int) any
}

// Values is the inputs of seq, in order.
func Values[A any](seq iter.Seq[A]) Inputs { return seqInputs[A]{seq} }

type seqInputs[A any] struct{ seq iter.Seq[A] }

func (in seqInputs[A]) batches(n int) iter.Seq[batch] {
	return func(yield func(batch) bool) {
		b := &slab[A]{items: make([]A, 0, n)}
		for a := range in.seq {
			b.items = append(b.items, a)
			if len(b.items) < n {
				continue
			}
			if !yield(b) {
				return
			}
			clear(b.items) // let the inputs go
			b.items = b.items[:0]
		}
		if len(b.items) > 0 {
			yield(b)
		}
	}
}

// slab is a batch of inputs of one type, reused from batch to batch.
type slab[A any] struct{ items []A }

func (s *slab[A]) len() int                 { return len(s.items) }
func (s *slab[A]) marshal() ([]byte, error) { return task.Marshal(s.items) }
func (s *slab[A]) at(i int) any             { return s.items[i] }
