package bench

import (
	"strings"
	"testing"

	"github.com/platoim/plato/internal/config"
)

// TestUplinkWebhookBusiness answers the uplinks with the bench's own business server reached by
// webhooks (--business http://..., --webhook-secret): every ACKed uplink reached it once, each
// request verified.
func TestUplinkWebhookBusiness(t *testing.T) {
	const secret = "bench-webhook-secret-0123"
	url := "http://" + freeAddr(t) + "/plato"
	p := testPlatform(t, url, func(c *config.Config) {
		a := c.Apps[DefaultAppID]
		a.WebhookSecret = secret
		c.Apps[DefaultAppID] = a
	})
	o := tinyOptions(p, ScenarioUplink)
	o.Window = 2
	o.Business, o.WebhookSecret = url, secret
	s := runTiny(t, o)
	checkClean(t, "plato", &s.Figures, o.Devices)
	if s.Business == nil || s.Business.Received != s.Acked || s.Acked == 0 || s.Business.Duplicated != 0 {
		t.Errorf("business figures %+v, acked %d", s.Business, s.Acked)
	}
	if !strings.Contains(strings.Join(s.Notes, "\n"), "by signed webhooks") {
		t.Errorf("the notes do not say the business was a webhook: %q", s.Notes)
	}
	o.WebhookSecret = "short"
	if err := o.validate(); err == nil || !strings.Contains(err.Error(), "webhook secret") {
		t.Errorf("a webhook business without its secret: %v", err)
	}
}
