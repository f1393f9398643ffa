package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/station/identity"
	"github.com/lifeboat-updater/lifeboat/station/protocol"
	"github.com/lifeboat-updater/lifeboat/station/server"
	"github.com/lifeboat-updater/lifeboat/station/stationtest"
	"github.com/lifeboat-updater/lifeboat/station/store"
)

func newServer(t *testing.T) (*httptest.Server, string) {
	f := stationtest.New(t)
	p := f.Bundle(t, "os.lfb", "1.0", []string{"qemu-x86_64"}, stationtest.UnitFields()[:2])
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "line.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fi, _ := os.Stat(p)
	_, priv, _ := bundle.GenerateKey(nil)
	mp, _ := identity.ParseMACPool("02:00:00:00:00:00-02:00:00:00:00:ff", 2)
	srv := httptest.NewServer(server.New(server.Config{
		Station: "st1", Store: st, Signer: bundle.Ed25519Signer{Key: priv}, Boards: []string{"qemu-x86_64"},
		Pools:   store.Pools{Serials: &identity.SerialRange{Format: "LB-%06d", First: 1, Last: 9}, MACs: &mp},
		Bundles: []server.Bundle{{Name: "os.lfb", Path: p, Size: fi.Size(), Manifest: f.Manifest(t, p)}},
		Logf:    t.Logf,
	}))
	t.Cleanup(srv.Close)
	return srv, p
}

func post(t *testing.T, url, body string) (int, protocol.Error) {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e protocol.Error
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e
}

// TestHostileRequests sends what an attacker on the line's network would:
// each gets a clear refusal and changes nothing.
func TestHostileRequests(t *testing.T) {
	srv, _ := newServer(t)
	ann := func(hw string) string {
		return `{"protocol":1,"board":"qemu-x86_64","hardware":` + hw + `}`
	}
	status, e := post(t, srv.URL+protocol.PathAnnounce, ann(`{"mac":"52:54:00:00:00:01"}`))
	if status != 200 {
		t.Fatalf("good announce: %d %+v", status, e)
	}
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"not JSON", protocol.PathAnnounce, "{", 400, protocol.CodeBadRequest},
		{"old protocol", protocol.PathAnnounce, `{"protocol":0,"board":"x","hardware":{"mac":"a"}}`, 400, protocol.CodeVersion},
		{"no hardware", protocol.PathAnnounce, ann(`{}`), 400, protocol.CodeBadRequest},
		{"quote in id", protocol.PathAnnounce, ann(`{"emmc_cid":"a\",b"}`), 400, protocol.CodeBadRequest},
		{"newline in id", protocol.PathAnnounce, ann(`{"cpu_serial":"a\nb"}`), 400, protocol.CodeBadRequest},
		{"long id", protocol.PathAnnounce, ann(`{"cpu_serial":"` + strings.Repeat("a", 200) + `"}`), 400, protocol.CodeBadRequest},
		{"unknown board", protocol.PathAnnounce, `{"protocol":1,"board":"evil","hardware":{"mac":"a"}}`, 403, protocol.CodeBoardRefused},
		{"unknown run", "/api/v1/runs/999/identity", `{}`, 404, protocol.CodeUnknownRun},
		{"bad run id", "/api/v1/runs/-1/identity", `{}`, 400, protocol.CodeBadRequest},
		{"events without seq", "/api/v1/runs/1/events", `{"event":"start"}`, 400, protocol.CodeBadRequest},
		{"events not objects", "/api/v1/runs/1/events?seq=0", `[1,2]`, 400, protocol.CodeBadRequest},
		{"events no kind", "/api/v1/runs/1/events?seq=0", `{"time":"2020-01-01T00:00:00Z"}`, 400, protocol.CodeBadRequest},
		{"events unknown run", "/api/v1/runs/77/events?seq=0", `{"event":"start"}`, 404, protocol.CodeUnknownRun},
		{"pass with failed read-back", "/api/v1/runs/1/result", `{"pass":true,"read_back":"fail"}`, 400, protocol.CodeBadRequest},
		{"fail without reason", "/api/v1/runs/1/result", `{"pass":false,"read_back":"none"}`, 400, protocol.CodeBadRequest},
		{"bad read-back", "/api/v1/runs/1/result", `{"pass":true,"read_back":"maybe"}`, 400, protocol.CodeBadRequest},
		{"scan bad serial", protocol.PathSerials, `{"serial":"../../x"}`, 400, protocol.CodeBadRequest},
		{"scan serial the bundle refuses", protocol.PathSerials, `{"serial":"XY-12"}`, 400, protocol.CodeBadRequest},
	} {
		status, e := post(t, srv.URL+tc.path, tc.body)
		if status != tc.status || e.Code != tc.code || e.Error == "" || strings.Contains(e.Error, "\n") {
			t.Errorf("%s: %d %+v, want %d %s with a one-line message", tc.name, status, e, tc.status, tc.code)
		}
	}
	if status, e := post(t, srv.URL+protocol.PathSerials, `{"serial":"LB-777777"}`); status != 204 {
		t.Errorf("scan: %d %+v", status, e)
	}
	if status, e := post(t, srv.URL+protocol.PathSerials, `{"serial":"LB-777777"}`); status != 409 || e.Code != protocol.CodeDuplicate {
		t.Errorf("scan twice: %d %+v", status, e)
	}
	// The run is untouched: still in progress, no events.
	resp, _ := http.Post(srv.URL+"/api/v1/runs/1/identity", "application/json", nil)
	var id protocol.Identity
	json.NewDecoder(resp.Body).Decode(&id)
	resp.Body.Close()
	if id.Serial != "LB-000001" {
		t.Errorf("identity after the attempts = %+v, want the first serial", id)
	}
	// A body far too large is cut off, not read into memory.
	big := `{"pass":true,"read_back":"none","reason":"` + strings.Repeat("x", 17<<20) + `"}`
	if status, _ := post(t, srv.URL+"/api/v1/runs/1/result", big); status != 400 {
		t.Errorf("17 MiB report: %d, want 400", status)
	}
}

// TestBundleServing: the bundle comes with Range support; nothing else of
// the disk does.
func TestBundleServing(t *testing.T) {
	srv, path := newServer(t)
	want, _ := os.ReadFile(path)
	req, _ := http.NewRequest("GET", srv.URL+"/bundles/os.lfb", nil)
	req.Header.Set("Range", "bytes=100-199")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, want[100:200]) {
		t.Errorf("Range 100-199: %s, %d bytes", resp.Status, len(b))
	}
	for _, p := range []string{"/bundles/..%2f..%2f..%2fetc%2fpasswd", "/bundles/line.db", "/bundles/", "/bundles/os.lfb/x"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", p, resp.Status)
		}
	}
}

// TestExhaustedReply: a station whose range is used up answers 503 with
// Retry-After and allocates nothing.
func TestExhaustedReply(t *testing.T) {
	srv, _ := newServer(t)
	for i := 0; i < 10; i++ {
		status, e := post(t, srv.URL+protocol.PathAnnounce, fmt.Sprintf(`{"protocol":1,"board":"qemu-x86_64","hardware":{"mac":"m%d"}}`, i))
		if status != 200 {
			t.Fatal(e)
		}
		resp, err := http.Post(fmt.Sprintf("%s/api/v1/runs/%d/identity", srv.URL, i+1), "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if i < 9 && resp.StatusCode != 200 {
			t.Fatalf("unit %d: %s", i, resp.Status)
		}
		if i == 9 && (resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "10") {
			t.Errorf("tenth unit: %s, Retry-After %q; want 503 and 10", resp.Status, resp.Header.Get("Retry-After"))
		}
	}
}
