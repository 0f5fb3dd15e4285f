package credential

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MintHS256 signs a device credential as an app's backend would (HS256 with one of the app's
// secrets, under its kid): for Plato's own tools (`plato token mint`, `plato bench`) and tests,
// never on a device's path.
func MintHS256(app, kid, secret, did, uid string, now time.Time, ttl time.Duration) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": uid, "did": did, "aud": app, "iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	})
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("signing a credential for %s/%s: %w", app, did, err)
	}
	return s, nil
}
