package task

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	h := HandlerFunc(func(context.Context, json.RawMessage) (json.RawMessage, error) { panic("boom") })
	if err := r.Register("x", h); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("x", h); !errors.Is(err, ErrDuplicateKind) {
		t.Errorf("second Register: err %v, want ErrDuplicateKind", err)
	}
	if err := r.Register("a.b", h); err == nil {
		t.Errorf("Register with a dot in the kind succeeded")
	}
	_, err := r.Call(context.Background(), "x", nil)
	var pe *PanicError
	if !errors.As(err, &pe) || pe.Kind != "x" || pe.Value != "boom" {
		t.Errorf("panicking handler: err %v, want *PanicError{x, boom}", err)
	}
	if got := r.Kinds(); len(got) != 1 || got[0] != "x" {
		t.Errorf("Kinds() = %v, want [x]", got)
	}
}
