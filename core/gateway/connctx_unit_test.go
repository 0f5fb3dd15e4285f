package gateway

import (
	"context"
	"testing"
	"unsafe"
)

type otherKey struct{}

// TestConnCtxCarriesTheConnAndItsParent: the context netpoll keeps answers the conn under
// connCtxKey and everything else from its parent, in 24 bytes.
func TestConnCtxCarriesTheConnAndItsParent(t *testing.T) {
	c := &conn{id: 7}
	ctx := context.Context(&connCtx{Context: context.WithValue(context.Background(), otherKey{}, "parent"), c: c})
	if got, _ := ctx.Value(connCtxKey{}).(*conn); got != c {
		t.Fatalf("Value(connCtxKey) = %v, want the conn", got)
	}
	if got := ctx.Value(otherKey{}); got != "parent" {
		t.Fatalf("Value(otherKey) = %v, want the parent's value", got)
	}
	if got := ctx.Value("absent"); got != nil {
		t.Fatalf("Value of an absent key = %v, want nil", got)
	}
	if s := unsafe.Sizeof(connCtx{}); s != 24 {
		t.Fatalf("connCtx is %d bytes, want 24", s)
	}
}
