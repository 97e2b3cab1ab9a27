// Package task is the handler API, what a consumer of one's own needs:
// Register (or MustRegister) a typed function under a kind in a Registry,
// Retry to ask for another try, Attempt to know which try this is, and
// the errors. It imports only the standard library and the JSON codec.
//
//	reg := task.NewRegistry()
//	task.MustRegister(reg, "double", func(ctx context.Context, x int) (int, error) {
//		return 2 * x, nil
//	})
package task
