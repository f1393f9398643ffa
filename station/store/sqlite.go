package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	_ "modernc.org/sqlite" // pure Go: the station stays one static binary
)

type sqliteDialect struct{}

func (sqliteDialect) name() string                                    { return "sqlite" }
func (sqliteDialect) idColumn() string                                { return "INTEGER PRIMARY KEY AUTOINCREMENT" }
func (sqliteDialect) forUpdate() string                               { return "" }
func (sqliteDialect) rebind(q string) string                          { return q }
func (sqliteDialect) lockSchema(ctx context.Context, _ *sql.Tx) error { return nil }
func (sqliteDialect) isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// OpenSQLite opens (creating if needed) the SQLite database at path.
//
// Durability: WAL with synchronous=FULL, so a committed allocation survives
// the station being killed and the machine losing power. Every
// transaction starts with BEGIN IMMEDIATE (it takes the write lock first),
// so two allocations never read the same counter; busy_timeout makes a
// second process (a station restarted while the old one still exits) wait
// instead of failing.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(30000)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	// One writer at a time is SQLite's rule; one connection keeps the
	// station's own goroutines from waiting on the file lock.
	db.SetMaxOpenConns(1)
	s := &sqlStore{db: db, d: sqliteDialect{}}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	return s, nil
}
