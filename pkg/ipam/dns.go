//go:build linux

package ipam

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// readResolvConf turns a resolv.conf into the result's DNS section, as
// host-local's resolvConf option does.
func readResolvConf(path string) (types.DNS, error) {
	var dns types.DNS
	f, err := os.Open(path)
	if err != nil {
		return dns, fmt.Errorf("open resolvConf: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			dns.Nameservers = append(dns.Nameservers, fields[1])
		case "domain":
			dns.Domain = fields[1]
		case "search":
			dns.Search = append(dns.Search, fields[1:]...)
		case "options":
			dns.Options = append(dns.Options, fields[1:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return dns, fmt.Errorf("read resolvConf: %w", err)
	}
	return dns, nil
}
