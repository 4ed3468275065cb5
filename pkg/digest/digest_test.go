package digest

import "testing"

func TestHex(t *testing.T) {
	a := Hex(32, "net", "cid", "eth0")
	if len(a) != 32 || Hex(9, "net", "cid", "eth0") != a[:9] {
		t.Fatalf("Hex(32) = %q, Hex(9) = %q: not a prefix of one digest", a, Hex(9, "net", "cid", "eth0"))
	}
	if a != Hex(32, "net", "cid", "eth0") {
		t.Fatal("not stable")
	}
	// Known value (FNV-1a 128 computed outside Go), so a change of hash (which renames every host veth and
	// masquerade key a running node has) cannot pass unnoticed.
	if got, want := Hex(16, "c1", "eth0"), "008e04da92659b59"; got != want {
		t.Errorf("Hex(16, c1, eth0) = %s, want %s", got, want)
	}
	for _, other := range [][]string{{"net", "cid", "eth1"}, {"net2", "cid", "eth0"}, {"netc", "id", "eth0"}, {"net", "cideth0"}} {
		if Hex(32, other...) == a {
			t.Errorf("%q hashes like [net cid eth0]", other)
		}
	}
}
