package platformtest

import (
	"testing"
	"time"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	apiservice "github.com/platoim/plato/sdk/business/rpc/plato/api/plato"
)

// Business is internal/testkit's fake business server: a real Kitex Business service that records
// every event and answers uplinks as SetAnswer says (accepting all by default).
type Business = testkit.Business

// StartBusiness listens on a free loopback port until the test ends.
func StartBusiness(t testing.TB) *Business {
	t.Helper()
	b, stop := testkit.ServeBusiness(t)
	t.Cleanup(stop)
	return b
}

// StateClient is a Kitex client of Plato's RPC on a state server, as a business server would use.
func StateClient(t testing.TB, addr string) apiservice.Client {
	t.Helper()
	c, err := apiservice.NewClient("plato", rpc.Client(addr, 10*time.Second)...)
	if err != nil {
		t.Fatalf("Plato RPC client: %v", err)
	}
	return c
}

// Caller names app with the key Config gives it.
func Caller(app string) *api.Caller { return &api.Caller{AppId: app, Key: KeyOf(app)} }

// KeyOf is the business key Config configures for one of Apps.
func KeyOf(app string) string { return "platformtest-key-" + app }
