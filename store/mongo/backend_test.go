package mongo_test

import (
	"testing"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/mongo/mongotest"
	"github.com/hustack/hustack/store/storetest"
)

// TestBackend runs the conformance suite against MongoDB: the server named by
// MONGODB_URI, or else the embedded FerretDB.
func TestBackend(t *testing.T) {
	var opts []storetest.Option
	if mongotest.IsFerretDB(t) {
		// FerretDB runs an update as query, filter in Go, then replace by
		// _id, without isolation, so concurrent conditional updates of one
		// document can overwrite a newer last_used_at with an older one.
		// MongoDB applies the filter and $set atomically per document.
		opts = append(opts, storetest.Skip("APIKeys/TouchConcurrent",
			mongotest.FerretDBSkipReason+"atomic conditional update of one document under concurrent writers"))
	}
	storetest.Run(t, func(t *testing.T) store.Backend { return mongotest.Open(t) }, opts...)
}
