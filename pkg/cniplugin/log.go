package cniplugin

import (
	"log/slog"
	"os"
	"strings"

	"github.com/podns/podns/pkg/netconf"
)

// logger writes structured logs to the config's logFile or CNI_LOG_FILE,
// never to stdout (that carries the result). Without either it discards.
func logger(conf *netconf.NetConf) (*slog.Logger, func()) {
	path := conf.LogFile
	if path == "" {
		path = os.Getenv("CNI_LOG_FILE")
	}
	if path == "" {
		// DiscardHandler formats nothing (no clock, no time zone load).
		return slog.New(slog.DiscardHandler), func() {}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		// Logging must never fail a verb; stderr is the runtime's.
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), func() {}
	}
	lvl := slog.LevelInfo
	switch strings.ToLower(conf.LogLevel) {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	}
	l := slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: lvl})).With("pid", os.Getpid(), "network", conf.Name)
	return l, func() { f.Close() }
}
