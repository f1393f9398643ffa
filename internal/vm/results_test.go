package vm

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeResults(t *testing.T) {
	type res struct {
		Step string `json:"step"`
		N    int64  `json:"n"`
	}
	console := "[    1.0] booting\n" +
		"t: {\"step\":\"a\",\"n\":1}\n" +
		"other: {\"step\":\"x\"}\n" +
		"[   2.5] t: {\"step\":\"b\",\"n\":4611686018427387904}  \r\n" +
		"t: done\n"
	got, err := decodeResults[res](console, "t")
	if err != nil {
		t.Fatal(err)
	}
	want := []res{{"a", 1}, {"b", 1 << 62}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("decodeResults (-want +got):\n%s", d)
	}
	if _, err := decodeResults[res]("t: {\"step\":\n", "t"); err == nil {
		t.Error("decodeResults(broken line) = nil error")
	}
}
