package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/lifeboat-updater/lifeboat/station/store"
	"github.com/lifeboat-updater/lifeboat/station/store/storetest"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() store.Store {
		path := filepath.Join(t.TempDir(), "line.db")
		return func() store.Store {
			s, err := store.OpenSQLite(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}
