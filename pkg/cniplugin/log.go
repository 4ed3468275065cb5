package cniplugin

import (
	"os"

	"github.com/podns/podns/pkg/cnilog"
	"github.com/podns/podns/pkg/netconf"
)

// logger writes JSON log lines to the config's logFile or CNI_LOG_FILE,
// never to stdout (that carries the result). Without either it discards.
func logger(conf *netconf.NetConf) (*cnilog.Logger, func()) {
	path := conf.LogFile
	if path == "" {
		path = os.Getenv("CNI_LOG_FILE")
	}
	if path == "" {
		return nil, func() {}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		// Logging must never fail a verb; stderr is the runtime's.
		return cnilog.New(os.Stderr, cnilog.Info), func() {}
	}
	lvl, _ := cnilog.ParseLevel(conf.LogLevel) // netconf has checked it
	return cnilog.New(f, lvl).With("pid", os.Getpid(), "network", conf.Name), func() { f.Close() }
}
