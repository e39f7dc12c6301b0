<?php
// The one file to require: an autoloader for the Ezdb\ classes (php/src/Ezdb) and for the
// eZ Publish drop-ins eZDBFileHandler (php/eZDBFileHandler.php) and eZDFSFileHandler
// (php/eZDFSFileHandler.php). No Composer needed.

spl_autoload_register(static function (string $class): void {
    if (str_starts_with($class, 'Ezdb\\')) {
        $file = __DIR__ . '/src/' . str_replace('\\', '/', $class) . '.php';
        if (is_file($file)) {
            require $file;
        }
    } elseif (strcasecmp($class, 'eZDBFileHandler') === 0) {
        require __DIR__ . '/eZDBFileHandler.php';
    } elseif (strcasecmp($class, 'eZDFSFileHandler') === 0) {
        require __DIR__ . '/eZDFSFileHandler.php';
    }
});
