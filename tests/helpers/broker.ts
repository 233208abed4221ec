// Moved to scripts/support (the scripts use them too); tests keep importing them from here.
export * from '../../scripts/support/broker.js';
