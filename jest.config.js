/** Jest 30 + ts-jest in ESM mode (see docs/development.md). */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, diagnostics: false }],
  },
  testTimeout: 30000,
  maxWorkers: 2,
  // Runner, sandbox and HTTP tests spawn real processes: give them room and report slow ones.
  slowTestThreshold: 10,
};
