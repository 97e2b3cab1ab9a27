// Package task holds what producers and consumers share: the wire format of a
// task message (subjects and header names), the handler registry and the
// built-in task kinds. It imports only the standard library.
package task
