// Package e2e runs procq's executables as separate OS processes against a
// real broker on loopback. TestMain builds them once.
package e2e
