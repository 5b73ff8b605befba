// CNI error codes (SPEC section 5) and the error type every plugin throws.

export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IOFailure: 5,
  DecodingFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  LimitedConnectivity: 51,
  // cnikit's own codes (documented in README.md, "Error codes").
  /** CHECK found the attachment different from what ADD made. */
  CheckFailed: 100,
  /** No free address is left in a range set. */
  RangeExhausted: 101,
  /** A requested host port is already bound or published. */
  PortInUse: 102,
  /** A requested address is already leased to another container. */
  AddressInUse: 103,
  /** An operation on the system failed (netlink, firewall, files). */
  Internal: 999,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    msg: string,
    readonly details?: string,
  ) {
    super(msg);
  }
}
