package cniplugin

import (
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// codeErr makes a CNI error with the given code.
func codeErr(code uint, format string, a ...any) error {
	return types.NewError(code, fmt.Sprintf(format, a...), "")
}

// toCNI turns err into the *types.Error skel prints. skel unwraps to the
// innermost *types.Error and would drop our context, so the whole message
// is carried up with the inner code (999 when there is none).
func toCNI(err error) error {
	if err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) {
		if te == err {
			return te
		}
		code := te.Code
		if code == 0 {
			code = types.ErrInternal
		}
		// te.Error() appends the details; keep them in Details only.
		msg := strings.Replace(err.Error(), te.Error(), te.Msg, 1)
		return &types.Error{Code: code, Msg: msg, Details: te.Details}
	}
	return &types.Error{Code: types.ErrInternal, Msg: err.Error()}
}
