// Stylesheets are bundled by esbuild (shared/BrowserBundle.ts) into the console's one CSS file.
declare module "*.css"
