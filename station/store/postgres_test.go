package store_test

import (
	"context"
	"testing"

	"github.com/lifeboat-updater/lifeboat/station/store"
	"github.com/lifeboat-updater/lifeboat/station/store/pgtest"
	"github.com/lifeboat-updater/lifeboat/station/store/storetest"
)

// TestPostgres runs the suite against a real PostgreSQL server; its
// ConcurrentAllocators case is several stations sharing one database.
func TestPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	storetest.Run(t, func(t *testing.T) func() store.Store {
		url := srv.NewDB(t)
		return func() store.Store {
			s, err := store.OpenPostgres(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}
