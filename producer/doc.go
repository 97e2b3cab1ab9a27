// Package producer is the submitting side: it opens runs on a queue, puts
// work and sentinels (Queue), and starts and joins consumer processes.
package producer
