// Package storetest is the conformance suite every store.Backend must pass.
package storetest

import (
	"testing"

	"github.com/hustack/hustack/store"
)

// Open returns a new, empty backend for one test; the suite closes it.
type Open func(t *testing.T) store.Backend

// Run runs the whole suite against backends made by open.
func Run(t *testing.T, open Open) {
	t.Helper()
}
