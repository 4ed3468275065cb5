// Package cnilog writes a plugin's log: one JSON object per line, the shape
// log/slog's JSON handler writes ("time", "level", "msg", then the
// attributes), each line in one write so lines from plugins appending to
// the same file at once do not interleave.
//
// It is not log/slog because a plugin process lives a few milliseconds and
// initialises every package it links: slog and what it alone pulls in cost
// each ADD and DEL more than the logging a plugin does
// (docs/benchmark-findings.md, Round 7).
package cnilog

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Level orders lines by severity; a logger drops lines below its own.
type Level int

const (
	Debug Level = -4
	Info  Level = 0
	Warn  Level = 4
	Error Level = 8
)

// ParseLevel reads a config's logLevel; "" is info.
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return Debug, nil
	case "", "info":
		return Info, nil
	case "warn":
		return Warn, nil
	case "error":
		return Error, nil
	}
	return Info, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
}

func (l Level) String() string {
	switch l {
	case Debug:
		return "DEBUG"
	case Warn:
		return "WARN"
	case Error:
		return "ERROR"
	}
	return "INFO"
}

// Logger writes lines at or above its level to w. The zero Logger, and a
// nil one, discard everything without formatting it.
type Logger struct {
	w     io.Writer
	min   Level
	attrs []byte // the With attributes, encoded, each led by a comma
}

// New returns a logger writing lines at level min and above to w.
func New(w io.Writer, min Level) *Logger { return &Logger{w: w, min: min} }

// With returns a logger that adds the key-value pairs to every line.
func (l *Logger) With(kv ...any) *Logger {
	if l == nil || l.w == nil {
		return l
	}
	return &Logger{w: l.w, min: l.min, attrs: appendPairs(append([]byte(nil), l.attrs...), kv)}
}

func (l *Logger) Debug(msg string, kv ...any) { l.log(Debug, msg, kv) }
func (l *Logger) Info(msg string, kv ...any)  { l.log(Info, msg, kv) }
func (l *Logger) Warn(msg string, kv ...any)  { l.log(Warn, msg, kv) }
func (l *Logger) Error(msg string, kv ...any) { l.log(Error, msg, kv) }

func (l *Logger) log(lvl Level, msg string, kv []any) {
	if l == nil || l.w == nil || lvl < l.min {
		return
	}
	b := make([]byte, 0, 256)
	b = append(b, `{"time":`...)
	b = appendString(b, time.Now().Format(time.RFC3339Nano))
	b = append(b, `,"level":`...)
	b = appendString(b, lvl.String())
	b = append(b, `,"msg":`...)
	b = appendString(b, msg)
	b = append(b, l.attrs...)
	b = appendPairs(b, kv)
	b = append(b, "}\n"...)
	l.w.Write(b) // a log line is never worth failing a verb for
}

// appendPairs encodes key, value pairs as JSON members, each led by a
// comma. A key without a value gets "!BADKEY" as its key, as slog does.
func appendPairs(b []byte, kv []any) []byte {
	for i := 0; i < len(kv); i += 2 {
		key, ok := kv[i].(string)
		var val any
		if !ok || i+1 == len(kv) {
			key, val = "!BADKEY", kv[i]
			i--
		} else {
			val = kv[i+1]
		}
		b = append(b, ',')
		b = appendString(b, key)
		b = append(b, ':')
		b = appendValue(b, val)
	}
	return b
}

func appendValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return appendString(b, v)
	case error:
		return appendString(b, v.Error())
	case fmt.Stringer:
		return appendString(b, v.String())
	}
	if j, err := json.Marshal(v); err == nil {
		return append(b, j...)
	}
	return appendString(b, fmt.Sprint(v))
}

func appendString(b []byte, s string) []byte {
	j, _ := json.Marshal(s) // a string always encodes
	return append(b, j...)
}
