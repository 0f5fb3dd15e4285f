package config

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Defaults of an app's settings.
const (
	DefaultJWTLeeway = 30 * time.Second
	// DefaultDeviceUplinksPerSec and DefaultDeviceUplinkBurst bound one device's uplinks: well
	// above what a person types or an app syncs, far below what a flood needs.
	DefaultDeviceUplinksPerSec = 50
	DefaultDeviceUplinkBurst   = 100
	// DefaultDeviceBytesPerSec bounds one device's uplink bytes (payloads and headers).
	DefaultDeviceBytesPerSec = 256 << 10
	// DefaultDeviceAbuseFactor: a device refused this many times its burst in a row is closed.
	DefaultDeviceAbuseFactor = 10
)

// App is one business Plato serves, under its app ID. An app that is not declared gets nothing:
// ipconf answers 403, a gateway refuses its logins, and its business servers cannot call Plato.
type App struct {
	// Keys are the keys the app's business servers present on every call to Plato's RPC, by a
	// name of your choice; any one of them is accepted, so a key is rotated by adding the new one,
	// moving the servers over, then removing the old. At least one, each at least 16 bytes. Keep
	// them out of files: PLATO_APPS__<APP>__KEYS__<NAME>=...
	Keys map[string]string `koanf:"keys"`
	// Business is where Plato delivers the app's uplinks and events and asks its callbacks: a
	// Kitex address (host:port or a unix socket path), or an http:// or https:// URL that gets
	// them as signed webhooks (docs/business.md). Empty: the app has no business server, and its
	// uplinks are refused with 1304.
	Business string `koanf:"business"`
	// Businesses are several endpoints of the app, each like Business, all of one kind (Kitex or
	// webhook): each call goes to the least busy one that is not failing, and a failed call is
	// tried on the next. Instead of Business, not with it. From the environment: a
	// comma-separated list, PLATO_APPS__<APP>__BUSINESSES=http://a:8000/plato,http://b:8000/plato.
	Businesses []string `koanf:"businesses"`
	// WebhookSecret signs every webhook request (HMAC-SHA256), so the business server knows it
	// comes from Plato. Required when the endpoints are URLs, at least 16 bytes. Keep it out of
	// files: PLATO_APPS__<APP>__WEBHOOK_SECRET=...
	WebhookSecret string `koanf:"webhook_secret"`
	// Auth says how the app's devices prove who they are.
	Auth AppAuth `koanf:"auth"`
	// Limits bound what one device and the whole app may use.
	Limits AppLimits `koanf:"limits"`
	// AllowedOrigins are the web origins ("https://app.example.com", scheme://host[:port]) whose
	// pages may log the app's devices in over WebSocket: a WebSocket Login or Resume whose
	// handshake carried another Origin is refused with 1106. "*" allows any. Empty: any origin
	// (devices prove who they are with tokens, never cookies; docs/security.md). A handshake without
	// Origin (not a browser) is always allowed. Compared case-insensitively.
	AllowedOrigins []string `koanf:"allowed_origins"`
}

// AppAuth says how an app's devices prove who they are: a JWT its backend signs, or a callback to
// its business server. One of the two is required.
type AppAuth struct {
	JWT JWTAuth `koanf:"jwt"`
	// Callback makes ipconf ask the business server (Business.Authenticate) with whatever
	// credential the device sent, instead of verifying a JWT. Default false.
	Callback bool `koanf:"callback"`
}

// JWTAuth are the keys an app's backend signs device credentials with. A credential is a JWT with
// `sub` = uid, a `did` claim, `aud` = the app ID and `exp`; `nbf` and `iat` are checked when
// present. The header's `kid` picks the key; without one, every key of the token's algorithm is
// tried. Accepted algorithms: HS256, RS256, ES256, EdDSA, each only with a key of its kind.
type JWTAuth struct {
	// Secrets are HS256 keys by kid, each at least 32 bytes. Keep them out of files:
	// PLATO_APPS__<APP>__AUTH__JWT__SECRETS__<KID>=...
	Secrets map[string]string `koanf:"secrets"`
	// PublicKeys are RS256 (RSA), ES256 (ECDSA P-256) or EdDSA (Ed25519) public keys by kid: PEM
	// text, or the path of a PEM file.
	PublicKeys map[string]string `koanf:"public_keys"`
	// JWKSFile is a JSON Web Key Set file (RFC 7517; kty oct, RSA, EC or OKP, each with a kid). It
	// is read again when it changes, so keys rotate without a restart: add the new key, let the
	// backend sign with it, then remove the old one.
	JWKSFile string `koanf:"jwks_file"`
	// Issuer, when set, must be the credential's `iss`. Default: not checked.
	Issuer string `koanf:"issuer"`
	// Leeway absorbs clock skew between the backend and Plato in exp, nbf and iat. Default 30s.
	Leeway time.Duration `koanf:"leeway"`
}

// Configured reports whether any key is set.
func (j JWTAuth) Configured() bool {
	return len(j.Secrets) > 0 || len(j.PublicKeys) > 0 || j.JWKSFile != ""
}

// AppLimits bound what one device and the whole app may use. Zero means the default for the
// per-device limits and no limit for the app-wide quotas.
type AppLimits struct {
	// DeviceUplinksPerSec and DeviceUplinkBurst are one device's token bucket of uplinks. Over it
	// the device gets UplinkAck 1308 (retry later), not a close. Defaults 50 and 100.
	DeviceUplinksPerSec float64 `koanf:"device_uplinks_per_sec"`
	DeviceUplinkBurst   int     `koanf:"device_uplink_burst"`
	// DeviceBytesPerSec bounds one device's uplink bytes per second (the burst is one second's
	// worth, and at least one frame). Default 262144.
	DeviceBytesPerSec float64 `koanf:"device_bytes_per_sec"`
	// Connections is the most connections of the app at once, fleet-wide: each gateway admits its
	// share (the quota divided by the live gateways). Over it a login gets LoginAck 1303. Default:
	// no limit.
	Connections int `koanf:"connections"`
	// UplinksPerSec is the app's uplinks per second, fleet-wide (each gateway its share). Over it
	// an uplink gets UplinkAck 1303. Default: no limit.
	UplinksPerSec float64 `koanf:"uplinks_per_sec"`
	// PushesPerSec is how many Push calls per second the app's business servers may make,
	// fleet-wide (each state server its share). Over it a call is refused with 1303. Default: no
	// limit.
	PushesPerSec float64 `koanf:"pushes_per_sec"`
}

// WithDefaults fills the zero per-device limits.
func (l AppLimits) WithDefaults() AppLimits {
	if l.DeviceUplinksPerSec == 0 {
		l.DeviceUplinksPerSec = DefaultDeviceUplinksPerSec
	}
	if l.DeviceUplinkBurst == 0 {
		l.DeviceUplinkBurst = DefaultDeviceUplinkBurst
	}
	if l.DeviceBytesPerSec == 0 {
		l.DeviceBytesPerSec = DefaultDeviceBytesPerSec
	}
	return l
}

// validAppID is what an app ID may be: it names files (pipelines), metric labels and environment
// variables, which are case-insensitive.
var validAppID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidAppID reports whether id can name an app.
func ValidAppID(id string) bool { return validAppID.MatchString(id) }

func (c *Config) validateApps(bad func(string, string, ...any)) {
	for _, id := range slices.Sorted(maps.Keys(c.Apps)) {
		a, key := c.Apps[id], "apps."+id
		if !ValidAppID(id) {
			bad(key, "is not a valid app ID: use up to 64 lower-case letters, digits, '_' and '-'")
		}
		if len(a.Keys) == 0 {
			bad(key+".keys", "is empty: the app's business servers could not call Plato (give at least one key)")
		}
		for name, k := range a.Keys {
			if len(k) < 16 {
				bad(key+".keys."+name, "must be at least 16 bytes, got %d", len(k))
			}
		}
		for i, o := range a.AllowedOrigins {
			if o != "*" && !validOrigin(o) {
				bad(fmt.Sprintf("%s.allowed_origins[%d]", key, i), "%q is not an origin: want scheme://host[:port] (no path) or *", o)
			}
		}
		a.validateEndpoints(key, bad)
		j := a.Auth.JWT
		switch {
		case a.Auth.Callback && j.Configured():
			bad(key+".auth", "sets both callback and jwt keys: choose one")
		case a.Auth.Callback && len(a.Endpoints()) == 0:
			bad(key+".auth.callback", "needs apps.%s.business: the callback asks the business server", id)
		case !a.Auth.Callback && !j.Configured():
			bad(key+".auth", "says nothing: set jwt keys (secrets, public_keys or jwks_file) or callback: true")
		}
		for kid, s := range j.Secrets {
			if len(s) < 32 {
				bad(key+".auth.jwt.secrets."+kid, "must be at least 32 bytes for HS256, got %d", len(s))
			}
		}
		if j.Leeway < 0 || j.Leeway > 10*time.Minute {
			bad(key+".auth.jwt.leeway", "must be between 0 and 10m, got %v", j.Leeway)
		}
		l := a.Limits
		for name, v := range map[string]float64{
			"device_uplinks_per_sec": l.DeviceUplinksPerSec, "device_bytes_per_sec": l.DeviceBytesPerSec,
			"uplinks_per_sec": l.UplinksPerSec, "pushes_per_sec": l.PushesPerSec,
			"device_uplink_burst": float64(l.DeviceUplinkBurst), "connections": float64(l.Connections),
		} {
			if v < 0 || v != v {
				bad(key+".limits."+name, "must not be negative, got %v", v)
			}
		}
	}
}

// Endpoints are the app's business endpoints: Business, or Businesses. Empty when it has none.
// An element of Businesses holding commas is a list (how the environment gives one).
func (a App) Endpoints() []string {
	if a.Business != "" {
		return []string{a.Business}
	}
	var eps []string
	for _, b := range a.Businesses {
		for ep := range strings.SplitSeq(b, ",") {
			eps = append(eps, strings.TrimSpace(ep))
		}
	}
	return eps
}

// IsWebhook reports whether a business endpoint is a webhook URL rather than a Kitex address.
func IsWebhook(endpoint string) bool {
	return strings.HasPrefix(endpoint, "http://") || strings.HasPrefix(endpoint, "https://")
}

// MinWebhookSecret is the shortest apps.<app>.webhook_secret accepted.
const MinWebhookSecret = 16

func (a App) validateEndpoints(key string, bad func(string, string, ...any)) {
	if a.Business != "" && len(a.Businesses) > 0 {
		bad(key+".businesses", "is set with %s.business: give one endpoint in business or several in businesses, not both", key)
		return
	}
	name := key + ".business"
	eps := a.Endpoints()
	if len(a.Businesses) > 0 {
		name = key + ".businesses"
	}
	webhooks := 0
	for i, ep := range eps {
		at := name
		if len(a.Businesses) > 0 {
			at = fmt.Sprintf("%s[%d]", name, i)
		}
		switch {
		case ep == "":
			bad(at, "is empty")
		case IsWebhook(ep):
			webhooks++
			if err := checkWebhookURL(ep); err != nil {
				bad(at, "%v", err)
			}
		case strings.Contains(ep, "://"):
			bad(at, "%q: a webhook URL starts with http:// or https://; a Kitex address is host:port or a unix socket path", ep)
		case isSocketPath(ep):
		default:
			if err := checkHostPort(ep); err != nil {
				bad(at, "%v", err)
			}
		}
	}
	if webhooks > 0 && webhooks < len(eps) {
		bad(name, "mixes webhook URLs and Kitex addresses: all endpoints of an app are one kind")
	}
	switch {
	case webhooks > 0 && a.WebhookSecret == "":
		bad(key+".webhook_secret", "is empty: webhooks are signed with it (at least %d bytes; PLATO_APPS__%s__WEBHOOK_SECRET)", MinWebhookSecret, strings.ToUpper(strings.TrimPrefix(key, "apps.")))
	case webhooks > 0 && len(a.WebhookSecret) < MinWebhookSecret:
		bad(key+".webhook_secret", "must be at least %d bytes, got %d", MinWebhookSecret, len(a.WebhookSecret))
	case webhooks == 0 && a.WebhookSecret != "":
		bad(key+".webhook_secret", "is set but %s is not a webhook URL: the secret signs webhooks only", name)
	}
}

// checkWebhookURL says why u cannot be a webhook endpoint.
func checkWebhookURL(u string) error {
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL: %v", u, err)
	case p.Host == "":
		return fmt.Errorf("%q has no host", u)
	case p.RawQuery != "" || p.Fragment != "" || p.User != nil:
		return fmt.Errorf("%q: a webhook URL has no query, fragment or user info (Plato adds /deliver, /sessions, /authenticate to its path)", u)
	}
	return nil
}

// AppKeyEnv is how an app's key is set from the environment, for messages.
func AppKeyEnv(app, name string) string { return fmt.Sprintf("PLATO_APPS__%s__KEYS__%s", app, name) }

// SimpleApp is an app with one business key and one HS256 credential secret (both under the name
// "dev"), delivering to the business server at business: what tests and the development
// configuration need.
func SimpleApp(key, jwtSecret, business string) App {
	return App{
		Keys: map[string]string{"dev": key}, Business: business,
		Auth: AppAuth{JWT: JWTAuth{Secrets: map[string]string{"dev": jwtSecret}}},
	}
}

// validOrigin reports whether o is an origin as browsers send it: scheme://host[:port].
func validOrigin(o string) bool {
	scheme, rest, ok := strings.Cut(o, "://")
	return ok && scheme != "" && rest != "" && !strings.ContainsAny(rest, "/?# ")
}
