import { generateIdentity, encodeNsec } from '../../crypto/keys.js';
import { EXIT_OK, parseFlags, writeJson, type CliCommand } from '../command.js';

export const keygenCommand: CliCommand = {
  name: 'keygen',
  summary: 'print a new secp256k1 key pair (nsec/npub)',
  usage: `usage: keygen [--json]

Prints a new Nostr-compatible key pair: the secret as nsec (keep it private; put it in
NODE_PRIVATE_KEY_PEM or a 0600 file) and the public key as npub (the keyId others trust).
  --json   {"nsec","npub","pubHex"}`,
  async run(args, io) {
    const { values } = parseFlags(args, { json: { type: 'boolean' } });
    const id = generateIdentity();
    const out = { nsec: encodeNsec(id.secretKey), npub: id.npub, pubHex: id.pubHex };
    if (values.json) writeJson(io, out);
    else io.stdout(`nsec ${out.nsec}\nnpub ${out.npub}\n`);
    return EXIT_OK;
  },
};
