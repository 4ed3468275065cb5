package cnilog

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
)

func lines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line is not a JSON object: %v\n%s", err, l)
		}
		out = append(out, m)
	}
	return out
}

func TestLinesAndLevels(t *testing.T) {
	var b bytes.Buffer
	l := New(&b, Info).With("pid", 42, "network", "n1")
	child := l.With("pod", "ns/p")
	l.Debug("dropped")
	child.Info("ADD", "ip", net.ParseIP("10.1.0.2"), "n", 3)
	child.Warn("rollback step failed", "err", errors.New(`bad "quote"`))
	l.Error("bare", "odd")
	got := lines(t, &b)
	if len(got) != 3 {
		t.Fatalf("want 3 lines (debug dropped), got %d:\n%s", len(got), b.String())
	}
	want := []map[string]any{
		{"level": "INFO", "msg": "ADD", "pid": 42.0, "network": "n1", "pod": "ns/p", "ip": "10.1.0.2", "n": 3.0},
		{"level": "WARN", "msg": "rollback step failed", "pod": "ns/p", "err": `bad "quote"`},
		{"level": "ERROR", "msg": "bare", "!BADKEY": "odd"},
	}
	for i, w := range want {
		if _, ok := got[i]["time"].(string); !ok {
			t.Errorf("line %d has no time: %v", i, got[i])
		}
		for k, v := range w {
			if got[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v", i, k, got[i][k], v)
			}
		}
	}
	if _, ok := got[2]["pod"]; ok {
		t.Errorf("With on a child leaked into its parent: %v", got[2])
	}
}

func TestDiscard(t *testing.T) {
	var nilLogger *Logger
	nilLogger.With("a", 1).Error("nothing") // must not panic
	var zero Logger
	zero.Info("nothing")
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]Level{"": Info, "debug": Debug, "INFO": Info, "Warn": Warn, "error": Error} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseLevel("trace"); err == nil {
		t.Error("ParseLevel(trace) accepted")
	}
}

// TestOneWritePerLine: plugins append to one file at once; a line split
// over two writes could interleave with another process's.
func TestOneWritePerLine(t *testing.T) {
	var w countingWriter
	New(&w, Debug).With("k", strings.Repeat("v", 5000)).Info("long", "x", 1)
	if w.writes != 1 {
		t.Fatalf("%d writes for one line", w.writes)
	}
}

type countingWriter struct{ writes int }

func (c *countingWriter) Write(p []byte) (int, error) { c.writes++; return len(p), nil }
