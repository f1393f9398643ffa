package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseSpec(t *testing.T) {
	for _, tt := range []struct {
		spec string
		want []string // String() of each source
	}{
		{"http://10.0.0.1/b.lfb", []string{"http://10.0.0.1/b.lfb"}},
		{"http://10.0.0.1/b.lfb,usb,file:/data/b.lfb", []string{"http://10.0.0.1/b.lfb", "usb", "file:/data/b.lfb"}},
		{" https://user:secret@host:8443/x.lfb , media ,, /abs/b.lfb ", []string{"https://user:xxxxx@host:8443/x.lfb", "usb", "file:/abs/b.lfb"}},
		{"file:///data/b.lfb,USB", []string{"file:/data/b.lfb", "usb"}},
		{"file://localhost/data/b.lfb", []string{"file:/data/b.lfb"}},
	} {
		got, err := ParseSpec(tt.spec, Options{Client: testClient(t)})
		if err != nil {
			t.Errorf("ParseSpec(%q) = %v", tt.spec, err)
			continue
		}
		var names []string
		for _, s := range got {
			names = append(names, s.String())
		}
		if diff := cmp.Diff(tt.want, names); diff != "" {
			t.Errorf("ParseSpec(%q) mismatch (-want +got):\n%s", tt.spec, diff)
		}
	}
	for _, bad := range []string{"", " , ", "ftp://host/b.lfb", "http:///nohost", "file:", "file://otherhost/b.lfb", "usb,nfs:/x", "relative/b.lfb"} {
		if got, err := ParseSpec(bad, Options{Client: testClient(t)}); !errors.Is(err, ErrSpec) {
			t.Errorf("ParseSpec(%q) = %v, %v, want ErrSpec", bad, got, err)
		}
	}
}

func TestParseSpecOptions(t *testing.T) {
	c := testClient(t)
	logf := func(string, ...any) {}
	srcs, err := ParseSpec("http://h/b.lfb,usb", Options{Client: c, Retry: fastRetry, Media: Media{Devices: []string{"mmcblk1"}}, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	h, ok := srcs[0].(*HTTP)
	if !ok || h.Client != c || h.Retry != fastRetry || h.Logf == nil {
		t.Errorf("ParseSpec() HTTP source = %+v, want the given client, retry and logger", srcs[0])
	}
	m, ok := srcs[1].(*Media)
	if !ok || len(m.Devices) != 1 || m.Logf == nil {
		t.Errorf("ParseSpec() media source = %+v, want the given options", srcs[1])
	}
}

func TestSpecFromCmdline(t *testing.T) {
	for _, tt := range []struct{ cmdline, spec, want string }{
		{"console=ttyS0 quiet", "usb", "usb"},
		{"console=ttyS0 lifeboat.url=http://10.0.2.2:8080/b.lfb quiet", "usb", "http://10.0.2.2:8080/b.lfb"},
		{`lifeboat.url="http://a/b.lfb,usb"`, "", "http://a/b.lfb,usb"},
		{"lifeboat.url=http://a/1.lfb lifeboat.url=http://a/2.lfb\n", "usb", "http://a/2.lfb"},
		{"lifeboat.urls=x", "usb", "usb"},
	} {
		if got := SpecFromCmdline(tt.cmdline, tt.spec); got != tt.want {
			t.Errorf("SpecFromCmdline(%q, %q) = %q, want %q", tt.cmdline, tt.spec, got, tt.want)
		}
	}
}

func TestFile(t *testing.T) {
	data := content(10_000, 30)
	path := filepath.Join(t.TempDir(), "b.lfb")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f := &File{Path: path}
	st, err := f.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(st)
	st.Close()
	if err != nil || !bytes.Equal(got, data) || st.Size != int64(len(data)) || st.Name != path {
		t.Errorf("File.Open() read %d bytes, %v, size %d, name %q", len(got), err, st.Size, st.Name)
	}
	r, err := f.OpenReaderAt(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, 100)
	if n, err := r.ReadAt(p, 9_950); n != 50 || err != io.EOF || !bytes.Equal(p[:50], data[9_950:]) || r.Size() != 10_000 {
		t.Errorf("ReadAt(100, 9950) = %d, %v, size %d", n, err, r.Size())
	}
	if _, err := (&File{Path: path + ".missing"}).Open(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Errorf("File.Open(missing) = %v, want ErrNotFound", err)
	}
}

// failing is a source that always fails with err.
type failing struct {
	name  string
	err   error
	tries int
}

func (f *failing) String() string { return f.name }
func (f *failing) Open(context.Context) (*Stream, error) {
	f.tries++
	return nil, f.err
}

func TestOpenFirst(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.lfb")
	os.WriteFile(path, []byte("bundle"), 0o644)
	bs, srv := newBundleServer(t, nil)
	bs.steps = []step{{status: 404}}
	web := &HTTP{URL: srv.URL + "/b.lfb", Client: testClient(t), Retry: fastRetry}
	var log logSink

	st, src, err := OpenFirst(context.Background(), []Source{web, &File{Path: path + ".no"}, &File{Path: path}}, fastRetry, log.logf)
	if err != nil {
		t.Fatalf("OpenFirst() = %v", err)
	}
	st.Close()
	if src.String() != "file:"+path {
		t.Errorf("OpenFirst() opened %s, want file:%s", src, path)
	}
	for _, want := range []string{"404", "no such file", "opened " + path} {
		if !log.contains(want) {
			t.Errorf("log does not mention %q: %q", want, log.lines)
		}
	}

	// All fail: every round tries every source; the error says why each failed.
	a := &failing{name: "a", err: ErrNotFound}
	b := &failing{name: "b", err: ErrNoMedia}
	_, _, err = OpenFirst(context.Background(), []Source{a, b}, Backoff{Initial: time.Millisecond, Attempts: 3}, nil)
	var e *Error
	if !errors.As(err, &e) || e.Rounds != 3 || len(e.Attempts) != 2 {
		t.Fatalf("OpenFirst() = %v, want *Error after 3 rounds of 2 attempts", err)
	}
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrNoMedia) || !strings.Contains(err.Error(), "a: ") {
		t.Errorf("OpenFirst() = %v, want it to wrap each source's error", err)
	}
	if a.tries != 3 || b.tries != 3 {
		t.Errorf("sources tried %d and %d times, want 3 each", a.tries, b.tries)
	}

	// The context ends the search.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err = OpenFirst(ctx, []Source{a}, Backoff{Initial: 10 * time.Millisecond, Attempts: -1}, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenFirst() with a deadline = %v, want DeadlineExceeded and the last error", err)
	}
}
