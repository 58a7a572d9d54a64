// Lets `npm start` and the CLIs run straight from TypeScript sources (no build step) through tsx.
// Production hosts run the compiled dist/ instead (npm run build; see deploy/).
import { register } from 'tsx/esm/api';
register();
