// Package pgtest starts a real PostgreSQL server for tests: a cluster made
// with initdb in a temporary folder, served by postgres on a Unix socket
// only (no TCP), as an unprivileged user (postgres refuses to run as root).
// Debian's postgresql package provides the programs; scripts/install-deps.sh
// installs it.
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// Server is a running PostgreSQL server.
type Server struct {
	dir string // socket directory; the cluster is in dir/data
	n   atomic.Int64
}

// bin finds a PostgreSQL program: on $PATH, else in Debian's versioned
// folder.
func bin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	sort.Strings(m)
	if len(m) == 0 {
		return "", fmt.Errorf("pgtest: %s not found (Debian package postgresql; scripts/install-deps.sh installs it)", name)
	}
	return m[len(m)-1], nil
}

// Start starts a server that stops when t ends. It fails the test (never
// skips it) when PostgreSQL is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	initdb, err := bin("initdb")
	if err != nil {
		t.Fatal(err)
	}
	postgres, err := bin("postgres")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "lifeboat-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			u, err = user.Lookup("nobody")
		}
		if err != nil {
			t.Fatalf("pgtest: no unprivileged user to run postgres as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	cmd := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(name, args...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
		c.Dir = dir
		c.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
		return c
	}
	data := filepath.Join(dir, "data")
	if out, err := cmd(initdb, "-D", data, "-U", "station", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	srv := cmd(postgres, "-D", data, "-k", dir, "-c", "listen_addresses=", "-c", "fsync=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB")
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatalf("pgtest: starting postgres: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			srv.Process.Kill()
			<-done
		}
		logf.Close()
	})
	s := &Server{dir: dir}
	deadline := time.Now().Add(60 * time.Second)
	for {
		db, err := sql.Open("pgx", s.url("postgres"))
		if err == nil {
			err = db.PingContext(context.Background())
			db.Close()
		}
		if err == nil {
			return s
		}
		select {
		case err := <-done:
			b, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			t.Fatalf("pgtest: postgres exited: %v\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			t.Fatalf("pgtest: postgres not ready after 60 s: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) url(db string) string {
	return fmt.Sprintf("host=%s user=station dbname=%s sslmode=disable", s.dir, db)
}

// NewDB creates an empty database and returns its connection string.
func (s *Server) NewDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("line%d", s.n.Add(1))
	db, err := sql.Open("pgx", s.url("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return s.url(name)
}
