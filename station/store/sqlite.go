package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/lifeboat-updater/lifeboat/station/identity"

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

// relaxBefore switches the connection to synchronous=NORMAL for an event
// log write: in WAL mode a commit is then durable against the process
// being killed but not against a power cut, until the next FULL commit
// (any allocation) syncs the log with it. SQLite takes the setting only
// outside a transaction; the store's one connection and its gate (fifo)
// keep other writes from running in between.
func (sqliteDialect) relaxBefore(ctx context.Context, db *sql.DB) func() {
	db.ExecContext(ctx, `PRAGMA synchronous = NORMAL`)
	return func() { db.ExecContext(context.Background(), `PRAGMA synchronous = FULL`) }
}

func (sqliteDialect) relaxInTx(context.Context, *sql.Tx) error { return nil }

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
	return &fifo{s: s, gate: make(chan struct{}, 1)}, nil
}

// fifo serves a store's calls in the order they came, as many at once as
// the gate holds (its capacity: the connections). database/sql hands a
// free connection to a random waiter, which under load leaves some
// requests waiting many seconds; a channel's waiting senders are served
// first come, first served.
type fifo struct {
	s    Store
	gate chan struct{}
}

func (f *fifo) lock()   { f.gate <- struct{}{} }
func (f *fifo) unlock() { <-f.gate }

func (f *fifo) Announce(ctx context.Context, a NewRun) (Run, bool, error) {
	f.lock()
	defer f.unlock()
	return f.s.Announce(ctx, a)
}

func (f *fifo) Allocate(ctx context.Context, unit int64, p Pools) (identity.Identity, error) {
	f.lock()
	defer f.unlock()
	return f.s.Allocate(ctx, unit, p)
}

func (f *fifo) SetCredentials(ctx context.Context, unit int64, cert, key string) (identity.Identity, error) {
	f.lock()
	defer f.unlock()
	return f.s.SetCredentials(ctx, unit, cert, key)
}

func (f *fifo) RegisterSerial(ctx context.Context, serial, hwKey string) error {
	f.lock()
	defer f.unlock()
	return f.s.RegisterSerial(ctx, serial, hwKey)
}

func (f *fifo) AddEvents(ctx context.Context, run int64, events []Event) error {
	f.lock()
	defer f.unlock()
	return f.s.AddEvents(ctx, run, events)
}

func (f *fifo) Finish(ctx context.Context, run int64, res Result) (Run, bool, error) {
	f.lock()
	defer f.unlock()
	return f.s.Finish(ctx, run, res)
}

func (f *fifo) Run(ctx context.Context, id int64) (Run, error) {
	f.lock()
	defer f.unlock()
	return f.s.Run(ctx, id)
}

func (f *fifo) Runs(ctx context.Context, limit int) ([]Run, error) {
	f.lock()
	defer f.unlock()
	return f.s.Runs(ctx, limit)
}

func (f *fifo) Events(ctx context.Context, run int64) ([]Event, error) {
	f.lock()
	defer f.unlock()
	return f.s.Events(ctx, run)
}

func (f *fifo) Unit(ctx context.Context, id int64) (Unit, error) {
	f.lock()
	defer f.unlock()
	return f.s.Unit(ctx, id)
}

func (f *fifo) Summary(ctx context.Context, now time.Time) (Summary, error) {
	f.lock()
	defer f.unlock()
	return f.s.Summary(ctx, now)
}

func (f *fifo) Close() error { return f.s.Close() }
