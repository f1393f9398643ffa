package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-updater/lifeboat/station/protocol"
)

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		code string
		is   error
	}{
		{protocol.CodeExhausted, ErrExhausted},
		{protocol.CodeBoardRefused, ErrRefused},
		{protocol.CodeNoBundle, ErrRefused},
		{protocol.CodeVersion, ErrRefused},
		{protocol.CodeUnknownRun, ErrUnknownRun},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(protocol.Error{Error: "the reason", Code: tc.code, RetryAfter: 7})
		}))
		_, err := New(srv.URL, nil).Announce(context.Background(), protocol.Announce{})
		srv.Close()
		var e *Error
		if !errors.Is(err, tc.is) || !errors.As(err, &e) || e.Message != "the reason" || e.RetryAfter != 7*time.Second {
			t.Errorf("code %s: %v (%+v), want %v", tc.code, err, e, tc.is)
		}
		if err.Error() != "station: the reason" {
			t.Errorf("code %s: message %q", tc.code, err)
		}
	}
	// Not a station: a plain HTTP error page.
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := New(srv.URL, nil).Identity(context.Background(), 3)
	if err == nil || errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "404") {
		t.Errorf("404 page: %v", err)
	}
}

// TestRetry: Retry waits what the station asks for, backs off when it
// cannot be reached, and stops on a refusal.
func TestRetry(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(protocol.Error{Error: "used up", Code: protocol.CodeExhausted, RetryAfter: 1})
		case 2:
			w.WriteHeader(http.StatusBadGateway) // a proxy's page: try again
		default:
			json.NewEncoder(w).Encode(protocol.AnnounceReply{Run: 5})
		}
	}))
	defer srv.Close()
	c := New(srv.URL, nil)
	var waits []string
	var got *protocol.AnnounceReply
	err := Retry(context.Background(), func(ctx context.Context) (err error) {
		got, err = c.Announce(ctx, protocol.Announce{})
		return err
	}, func(err error, next time.Duration) { waits = append(waits, fmt.Sprintf("%v / %v", err, next)) })
	if err != nil || got.Run != 5 {
		t.Fatalf("Retry = %v, %+v", err, got)
	}
	want := []string{"station: used up / 1s", "station: POST " + srv.URL + "/api/v1/announce: 502 Bad Gateway / 1s"}
	if diff := cmp.Diff(want, waits); diff != "" {
		t.Errorf("waits mismatch (-want +got):\n%s", diff)
	}
	refused := 0
	err = Retry(context.Background(), func(ctx context.Context) error {
		refused++
		return &Error{Code: protocol.CodeBoardRefused, Message: "no"}
	}, nil)
	if !errors.Is(err, ErrRefused) || refused != 1 {
		t.Errorf("Retry of a refusal = %v after %d calls, want one call", err, refused)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = Retry(ctx, func(ctx context.Context) error { return errors.New("unreachable") }, func(error, time.Duration) { cancel() })
	if err == nil || err.Error() != "unreachable" {
		t.Errorf("Retry after cancel = %v", err)
	}
}

// TestLog: lines arrive split over writes; a failed flush keeps them for
// the next flush or the report; sequence numbers never change.
func TestLog(t *testing.T) {
	var fail atomic.Bool
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.URL.Query().Get("seq")+":"+strings.TrimSpace(string(b)))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	l := New(srv.URL, nil).NewLog(9)
	ctx := context.Background()
	io.WriteString(l, `{"event":"start"}`+"\n"+`{"event":"pl`)
	io.WriteString(l, `an"}`+"\nnot json\n")
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	io.WriteString(l, `{"event":"step-start"}`+"\n")
	fail.Store(true)
	if err := l.Flush(ctx); err == nil {
		t.Errorf("Flush to a failing station = nil")
	}
	io.WriteString(l, `{"event":"done"}`+"\n")
	un := l.Unsent()
	if len(un) != 2 || un[0].Seq != 2 || un[1].Seq != 3 || string(un[1].Body) != `{"event":"done"}` {
		t.Errorf("Unsent() = %+v", un)
	}
	fail.Store(false)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"0:" + `{"event":"start"}` + "\n" + `{"event":"plan"}`, "2:" + `{"event":"step-start"}` + "\n" + `{"event":"done"}`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sent mismatch (-want +got):\n%s", diff)
	}
	if len(l.Unsent()) != 0 || l.Len() != 4 {
		t.Errorf("after flush: %d unsent, %d logged", len(l.Unsent()), l.Len())
	}
}

func TestStationOption(t *testing.T) {
	url := "http://198.18.0.1:8080"
	got, err := protocol.DecodeStationOption(protocol.EncodeStationOption(url))
	if err != nil || got != url {
		t.Errorf("round trip = %q, %v", got, err)
	}
	// Another sub-option first, then ours.
	b := append([]byte{9, 2, 'x', 'y'}, protocol.EncodeStationOption(url)...)
	if got, err := protocol.DecodeStationOption(b); err != nil || got != url {
		t.Errorf("after another sub-option = %q, %v", got, err)
	}
	for _, bad := range [][]byte{nil, {1}, {1, 5, 'a'}, {255, 0}, {1, 0}} {
		if got, err := protocol.DecodeStationOption(bad); err == nil {
			t.Errorf("DecodeStationOption(%v) = %q", bad, got)
		}
	}
}
