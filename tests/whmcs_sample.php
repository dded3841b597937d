<?php
// An integration in the shape of WHMCS's own API sample code: cURL,
// http_build_query, the credentials in `username` / `password`, and
// `responsetype=json`. Usage: php whmcs_sample.php URL IDENTIFIER SECRET [name=value ...]
// Prints the decoded answer as JSON, then the HTTP status on its own line.

[$script, $whmcsUrl, $username, $password] = array_slice($argv, 0, 4);

$postfields = array(
    'username' => $username,
    'password' => $password,
    'action' => 'CreateSsoToken',
    'responsetype' => 'json',
);
foreach (array_slice($argv, 4) as $pair) {
    [$name, $value] = explode('=', $pair, 2);
    $postfields[$name] = $value;
}

$ch = curl_init();
curl_setopt($ch, CURLOPT_URL, $whmcsUrl . 'includes/api.php');
curl_setopt($ch, CURLOPT_POST, 1);
curl_setopt($ch, CURLOPT_TIMEOUT, 30);
curl_setopt($ch, CURLOPT_RETURNTRANSFER, 1);
curl_setopt($ch, CURLOPT_POSTFIELDS, http_build_query($postfields));
$response = curl_exec($ch);
if (curl_error($ch)) {
    fwrite(STDERR, 'Unable to connect: ' . curl_errno($ch) . ' - ' . curl_error($ch) . "\n");
    exit(1);
}
$status = curl_getinfo($ch, CURLINFO_HTTP_CODE);
curl_close($ch);

$jsonData = json_decode($response, true);
echo json_encode($jsonData), "\n", $status, "\n";
