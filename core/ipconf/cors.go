package ipconf

import (
	"context"
	"net/http"

	"github.com/cloudwego/hertz/pkg/app"
	hertz "github.com/cloudwego/hertz/pkg/app/server"
)

// cors lets web pages of any origin ask GET /ip/list (docs/protocol.md §1): a browser app is
// served from its business's origin, never ipconf's. Any origin is safe to allow because the
// credential travels in the Authorization header (or the token parameter), never in a cookie, so a
// page can only present a credential it already holds. The preflight a browser sends before a
// request with Authorization is answered here, before the app or the credential is looked at.
func (s *Server) cors(h *hertz.Hertz) {
	h.Use(func(ctx context.Context, c *app.RequestContext) {
		if string(c.Path()) == "/ip/list" && len(c.Request.Header.Peek("Origin")) > 0 {
			c.Response.Header.Set("Access-Control-Allow-Origin", "*")
		}
		c.Next(ctx)
	})
	h.OPTIONS("/ip/list", func(_ context.Context, c *app.RequestContext) {
		c.Response.Header.Set("Access-Control-Allow-Methods", "GET")
		c.Response.Header.Set("Access-Control-Allow-Headers", "Authorization")
		c.Response.Header.Set("Access-Control-Max-Age", "600")
		c.Status(http.StatusNoContent)
	})
}
