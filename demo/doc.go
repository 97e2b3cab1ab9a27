// Package demo holds the demos' task kinds, which bin/consumer serves:
// sumsquares (the CPU-bound sum of squares of the Process demo), square
// (the Pool demo's tiny task, with an optional sleep) and message (the
// Queue demo's), and the Process demo's start and finish lines. They are
// examples of task kinds, not part of the libraries.
package demo
