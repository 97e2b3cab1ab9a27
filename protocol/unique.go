package protocol

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
)

// Unique tasks: a task or message-queue item put with a unique key first
// creates the key in UniqueBucket, valued with its task id and with a
// per-key TTL; a put that finds the key there is a duplicate. The key goes
// when its TTL runs out, or earlier when the task holding it succeeds (its
// consumer, or the getter of an item, removes it).
//
// The bucket's keys, each one subject token per part:
//
//	tasks.<queue>.<key>   a task of the task queue <queue>
//	q.<name>.<key>        an item of the message queue <name>
//
// <key> is the unique key escaped by UniqueKeyToken: a key-value key
// allows only letters, digits and - / _ =, so every other byte is "=XX".
const (
	// UniqueBucket holds the unique keys that are held.
	UniqueBucket = "PROCQ_UNIQUE"
	// HeaderUnique is a unique task's key, as given (unescaped); the task's
	// id is its HeaderTaskID.
	HeaderUnique = "Procq-Unique"
	// MaxUniqueKey is the longest unique key, in bytes.
	MaxUniqueKey = 255
	// UniqueMarkerTTL is how long the marker of a key that expired or was
	// removed stays: the least JetStream allows.
	UniqueMarkerTTL = time.Second
	// CountDuplicateItem counts the unique puts on a message queue refused
	// as duplicates (CountDuplicate: on a task queue).
	CountDuplicateItem = "duplicate_item"
)

// UniqueBucketConfig is the shape of UniqueBucket: keys with per-key TTLs.
func UniqueBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         UniqueBucket,
		Description:    "unique tasks: each key held by the first task put with it, until its ttl or its success",
		Storage:        jetstream.FileStorage,
		LimitMarkerTTL: UniqueMarkerTTL, // enables per-key TTLs
		Replicas:       replicas,
	}
}

// UniqueTaskKey is the key in UniqueBucket of unique key key on the task
// queue queue.
func UniqueTaskKey(queue, key string) string { return "tasks." + queue + "." + UniqueKeyToken(key) }

// UniqueItemKey is the key in UniqueBucket of unique key key on the
// message queue name.
func UniqueItemKey(name, key string) string { return "q." + name + "." + UniqueKeyToken(key) }

// UniqueTaskFilter and UniqueItemFilter match the keys of every task
// queue's and every message queue's unique tasks.
const (
	UniqueTaskFilter = "tasks.*.*"
	UniqueItemFilter = "q.*.*"
)

// ParseUniqueKey splits a key of UniqueBucket: item tells a message
// queue's from a task queue's; ok is false for any other key.
func ParseUniqueKey(k string) (item bool, queue, key string, ok bool) {
	parts := strings.Split(k, ".")
	if len(parts) != 3 || (parts[0] != "tasks" && parts[0] != "q") {
		return false, "", "", false
	}
	key, ok = uniqueKeyOf(parts[2])
	return parts[0] == "q", parts[1], key, ok
}

// UniqueKeyToken escapes a unique key into one token of a key-value key:
// letters, digits, '-' and '_' stay, every other byte is '=' and its two
// upper-case hex digits.
func UniqueKeyToken(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "=%02X", c)
	}
	return b.String()
}

// uniqueKeyOf undoes UniqueKeyToken.
func uniqueKeyOf(tok string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		if tok[i] != '=' {
			b.WriteByte(tok[i])
			continue
		}
		if i+2 >= len(tok) {
			return "", false
		}
		c, err := strconv.ParseUint(tok[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(c))
		i += 2
	}
	return b.String(), true
}

// ErrBadUnique says a unique key or its ttl cannot be used.
var ErrBadUnique = errors.New("bad unique key")

// CheckUnique says why key and ttl cannot be used, or nil: a key is 1 to
// 255 bytes of UTF-8 without '*', '>', white space or control
// characters, and the ttl is positive.
func CheckUnique(key string, ttl time.Duration) error {
	if err := CheckUniqueKey(key); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("%w %q: its ttl must be positive, got %v", ErrBadUnique, key, ttl)
	}
	return nil
}

// CheckUniqueKey is CheckUnique of the key alone.
func CheckUniqueKey(key string) error {
	bad := func(why string) error {
		q := fmt.Sprintf("%q", key)
		if len(key) > 40 {
			q = fmt.Sprintf("%q...", key[:40])
		}
		return fmt.Errorf("%w %s: %s", ErrBadUnique, q, why)
	}
	switch {
	case key == "":
		return bad("empty")
	case len(key) > MaxUniqueKey:
		return bad(fmt.Sprintf("%d bytes, over %d", len(key), MaxUniqueKey))
	case !utf8.ValidString(key):
		return bad("not UTF-8")
	case strings.ContainsAny(key, "*>"):
		return bad("'*' and '>' are not allowed")
	case strings.IndexFunc(key, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return bad("white space and control characters are not allowed")
	}
	return nil
}
