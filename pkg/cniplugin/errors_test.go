package cniplugin

import (
	"errors"
	"fmt"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// toCNI keeps the innermost CNI code but the whole message: skel alone
// would print only the inner error's text.
func TestToCNI(t *testing.T) {
	inner := types.NewError(types.ErrInvalidNetworkConfig, "bad subnet", "d")
	got := toCNI(fmt.Errorf("ipam host-local ADD: %w", inner))
	var te *types.Error
	if !errors.As(got, &te) || te.Code != types.ErrInvalidNetworkConfig || te.Msg != "ipam host-local ADD: bad subnet" || te.Details != "d" {
		t.Fatalf("wrapped: %#v", got)
	}
	if got := toCNI(inner); got != error(inner) {
		t.Fatalf("bare CNI error changed: %#v", got)
	}
	if !errors.As(toCNI(errors.New("plain")), &te) || te.Code != types.ErrInternal || te.Msg != "plain" {
		t.Fatalf("plain error: %#v", te)
	}
	if !errors.As(toCNI(fmt.Errorf("x: %w", &types.Error{Msg: "no code"})), &te) || te.Code != types.ErrInternal {
		t.Fatalf("code 0 must become 999: %#v", te)
	}
	if toCNI(nil) != nil {
		t.Fatal("nil must stay nil")
	}
}
