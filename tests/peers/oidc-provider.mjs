// A real OpenID provider for Convene's OAuth tests: node `oidc-provider`, configured like
// the providers Convene signs in with. PKCE is required, refresh tokens are issued for
// every code (as Google's access_type=offline does) and rotate on every use; reusing a
// rotated refresh token is refused (invalid_grant) and revokes the grant.
//
// Run by the tests: PORT=<port> REDIRECT_URI=<callback> node oidc-provider.mjs
// It prints "listening <issuer>" once ready. The interaction pages are the provider's
// own development pages (login with any name, then consent), driven over plain HTTP.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const redirectUri = process.env.REDIRECT_URI;
if (!port || !redirectUri) {
  console.error('PORT and REDIRECT_URI are required');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const GOOGLE_FREEBUSY = 'https://www.googleapis.com/auth/calendar.freebusy';
const GOOGLE_EVENTS = 'https://www.googleapis.com/auth/calendar.events';

const configuration = {
  clients: [
    {
      client_id: 'convene',
      client_secret: 'convene-secret',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  scopes: ['openid', 'email', 'profile', 'offline_access', GOOGLE_FREEBUSY, GOOGLE_EVENTS],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified', 'hd'],
    profile: ['name'],
  },
  // Any login name is an account; "alice" belongs to a Workspace domain, others do not.
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        const claims = {
          sub: id,
          email: `${id}@example.com`,
          email_verified: true,
          name: `${id[0].toUpperCase()}${id.slice(1)} Tester`,
        };
        if (id === 'alice') claims.hd = 'example.com';
        return claims;
      },
    };
  },
  pkce: { required: () => true },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  expiresWithSession: async () => false,
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    resourceIndicators: { enabled: false },
  },
  cookies: { keys: ['convene-test-peer-only'] },
  ttl: { AccessToken: 3600, AuthorizationCode: 120, RefreshToken: 86400, Grant: 86400, Session: 86400, Interaction: 600 },
};

const provider = new Provider(issuer, configuration);
const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
