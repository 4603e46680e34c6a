/**
 * The signing secrets, from the environment. The defaults are for local trials only, so that
 * `npm run sample:deliver` can sign deliveries the app accepts; they are printed at start.
 */
export const WEBHOOK_SECRETS = {
  stripe: process.env.STRIPE_WEBHOOK_SECRET || 'whsec_local_stripe_secret',
  github: process.env.GITHUB_WEBHOOK_SECRET || 'local-github-secret',
  // Standard Webhooks secrets are base64 after the whsec_ prefix.
  standard: process.env.STANDARD_WEBHOOK_SECRET || 'whsec_bG9jYWwtc3RhbmRhcmQtd2ViaG9va3Mtc2VjcmV0',
};

/** Which secrets came from defaults rather than the environment. */
export function defaultedSecrets(): string[] {
  const names = { stripe: 'STRIPE_WEBHOOK_SECRET', github: 'GITHUB_WEBHOOK_SECRET', standard: 'STANDARD_WEBHOOK_SECRET' } as const;
  return Object.entries(names)
    .filter(([, variable]) => !process.env[variable])
    .map(([provider, variable]) => `${variable}=${WEBHOOK_SECRETS[provider as keyof typeof names]}`);
}
