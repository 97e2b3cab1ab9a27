package broker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrStoreKey says the store cannot be opened with the configured key:
// nats-server itself would start and leave every encrypted stream out,
// as if the store were empty, so the broker refuses to start instead.
var ErrStoreKey = errors.New("the store key does not open this store")

// keyCheckFile holds a keyed hash of the store key, never the key: it
// tells, before nats-server opens the store, whether a key opens it.
const keyCheckFile = "store-key.check"

// checkStoreKey refuses a key that differs from the one the store was
// written with, a missing key for an encrypted store, and a key for a
// store written in the clear; it records the key's check on first use.
func checkStoreKey(dir, key string) error {
	path := filepath.Join(dir, keyCheckFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && key == "":
		return nil
	case errors.Is(err, fs.ErrNotExist) && hasStreams(dir):
		return fmt.Errorf("%w: it was written without encryption; set no key, or start from an empty store", ErrStoreKey)
	case errors.Is(err, fs.ErrNotExist):
		return os.WriteFile(path, []byte(keyCheck(key)+"\n"), 0o600)
	case err != nil:
		return fmt.Errorf("store key check: %w", err)
	case key == "":
		return fmt.Errorf("%w: the store is encrypted and no key is set", ErrStoreKey)
	case !hmac.Equal([]byte(strings.TrimSpace(string(b))), []byte(keyCheck(key))):
		return fmt.Errorf("%w: it was written with another key", ErrStoreKey)
	}
	return nil
}

func keyCheck(key string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("procq store key check"))
	return hex.EncodeToString(m.Sum(nil))
}

// hasStreams reports whether nats-server has stored a stream in dir.
func hasStreams(dir string) bool {
	entries, err := os.ReadDir(filepath.Join(dir, "jetstream"))
	if err != nil {
		return false
	}
	for _, acc := range entries {
		streams, err := os.ReadDir(filepath.Join(dir, "jetstream", acc.Name(), "streams"))
		if err == nil && len(streams) > 0 {
			return true
		}
	}
	return false
}
