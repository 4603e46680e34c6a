/** A reason the shop cannot start that the person starting it can fix: printed as one line, without a stack. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}
